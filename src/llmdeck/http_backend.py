"""The official client's requests to a plain-HTTP Ollama, on asyncio's own sockets.

httpx reaches the network through httpcore, whose default backend is anyio. On every read,
anyio's asyncio streams stop watching the socket once data has arrived and watch it again before
the next wait (an `epoll_ctl` system call each), and open a cancel scope even when no timeout is
set. A reply streams one token per read, so that is paid a hundred times a second. Here the
socket stays watched, what arrives is buffered, and a read without a timeout is one await.
Measured on the paced stream of `bench/perf.py` (100 tokens/s, six runs each, turn about,
2026-11-23): llmdeck took 11.2% of a core against 12.9% on anyio.

Only `http://` requests take this path (a local Ollama, where tokens stream fast); anything else
(a redirect to https) goes through httpx's own transport, as does everything when a proxy is
set. The client, its requests and httpx's handling of answers and errors are unchanged: this is
the layer below them.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import urllib.request
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

import httpcore
import httpx

# httpcore's socket options: (level, option, value) or (level, option, None, length).
SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]

# httpx's default limits, so only the layer below differs.
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
# Beyond this much unread, the socket is no longer read until the reader catches up.
_BUFFER_HIGH = 256 * 1024
# How long a name's first address (say ::1 for localhost) may stay silent before the next is tried,
# as anyio does.
_HAPPY_EYEBALLS_S = 0.25


def plain_http_transport(host: str, tls: ssl.SSLContext) -> httpx.AsyncBaseTransport | None:
    """The transport for a client of `host`, or None to keep httpx's default: an https server, a
    proxy (given a transport httpx reads none; the environment's and the system's, as httpx reads
    them, keep the official route), or an httpx whose transport is not as expected."""
    proxies = {scheme for scheme in urllib.request.getproxies() if scheme != "no"}  # no_proxy alone
    if httpx.URL(host).scheme != "http" or proxies:
        return None
    transport = PlainHttpTransport(tls)
    return transport if transport.usable else None


class PlainHttpTransport(httpx.AsyncBaseTransport):
    """`http://` on `AsyncioBackend`; any other scheme (a redirect to https) on httpx's own."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        # httpx's transport maps requests, answers and errors; only its connection pool is ours.
        # verify=False: its own pool, replaced at once, would load a CA store for nothing.
        self._plain = httpx.AsyncHTTPTransport(verify=False, limits=_LIMITS)
        self.usable = isinstance(getattr(self._plain, "_pool", None), httpcore.AsyncConnectionPool)
        self._plain._pool = httpcore.AsyncConnectionPool(
            max_connections=_LIMITS.max_connections,
            max_keepalive_connections=_LIMITS.max_keepalive_connections,
            keepalive_expiry=_LIMITS.keepalive_expiry,
            network_backend=AsyncioBackend(),
        )
        self._tls = tls
        self._other: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "http":
            return await self._plain.handle_async_request(request)
        if self._other is None:
            self._other = httpx.AsyncHTTPTransport(verify=self._tls, limits=_LIMITS)
        return await self._other.handle_async_request(request)

    async def aclose(self) -> None:
        await self._plain.aclose()
        if self._other is not None:
            await self._other.aclose()


def _deadline(timeout: float | None) -> AbstractAsyncContextManager[Any]:
    return nullcontext() if timeout is None else asyncio.timeout(timeout)


@asynccontextmanager
async def _mapped(
    timeout: float | None, on_timeout: type[Exception], on_error: type[Exception]
) -> AsyncIterator[None]:
    """Failures as httpcore's exceptions, which httpx turns into its own."""
    try:
        async with _deadline(timeout):
            yield
    except TimeoutError as error:
        raise on_timeout(str(error) or "timed out") from error
    except OSError as error:
        raise on_error(str(error) or type(error).__name__) from error


class _Connection(asyncio.Protocol):
    """One socket's bytes as they arrive. Unlike asyncio's StreamReader, what arrived before the
    connection broke is still read before the failure is (the last tokens of a reply a server or
    proxy aborted)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False  # the server sent its end, or the connection is gone
        self.error: Exception | None = None
        self._data_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _BUFFER_HIGH and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False  # close: the server will send nothing more on this connection

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        if exc is not None:
            self.error = exc
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_exception(exc or ConnectionResetError("connection closed"))

    def pause_writing(self) -> None:
        self._drain_waiter = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        self._drain_waiter = None

    def _wake(self) -> None:
        if self._data_waiter is not None and not self._data_waiter.done():
            self._data_waiter.set_result(None)

    async def read(self, max_bytes: int) -> bytes:
        while not self.buffer:
            if self.error is not None:
                raise self.error
            if self.ended:
                return b""
            self._data_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._data_waiter
            finally:
                self._data_waiter = None
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self._reading_paused and len(self.buffer) <= _BUFFER_HIGH // 4 and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        self.transport.write(data)
        if self._drain_waiter is not None:
            await asyncio.shield(self._drain_waiter)


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, connection: _Connection) -> None:
        self._transport = transport
        self._connection = connection

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if timeout is None:
            # A reply's reads (a model may take minutes to load first): no scope, one await.
            try:
                return await self._connection.read(max_bytes)
            except OSError as error:
                raise httpcore.ReadError(str(error) or type(error).__name__) from error
        async with _mapped(timeout, httpcore.ReadTimeout, httpcore.ReadError):
            return await self._connection.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        async with _mapped(timeout, httpcore.WriteTimeout, httpcore.WriteError):
            await self._connection.write(buffer)

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        # Asked only through a proxy, and with a proxy set this backend is not used.
        raise httpcore.ConnectError("llmdeck's plain-HTTP connections do not carry TLS")

    def get_extra_info(self, info: str) -> Any:
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            # Asked of an idle kept-alive connection before reuse: anything to read (bytes nobody
            # asked for, the server's end, a failure) means it is not reused.
            connection = self._connection
            return (
                bool(connection.buffer)
                or connection.ended
                or _readable(self._transport.get_extra_info("socket"))
            )
        return None


def _readable(sock: socket.socket | None) -> bool:
    if sock is None or sock.fileno() < 0:
        return True  # gone: the next read ends at once
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock], [], [], 0)  # Windows has no poll
    return bool(readable)


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        async with _mapped(timeout, httpcore.ConnectTimeout, httpcore.ConnectError):
            # asyncio sets TCP_NODELAY on TCP sockets, as anyio does.
            transport, connection = await loop.create_connection(
                _Connection,
                host,
                port,
                local_addr=(local_address, 0) if local_address else None,
                happy_eyeballs_delay=_HAPPY_EYEBALLS_S,
            )
        _set_options(transport, socket_options)
        return AsyncioStream(transport, connection)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[SocketOption] | None = None
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        async with _mapped(timeout, httpcore.ConnectTimeout, httpcore.ConnectError):
            transport, connection = await loop.create_unix_connection(_Connection, path)
        _set_options(transport, socket_options)
        return AsyncioStream(transport, connection)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _set_options(transport: asyncio.BaseTransport, options: Iterable[SocketOption] | None) -> None:
    sock = transport.get_extra_info("socket")
    for option in options or ():
        sock.setsockopt(*option)
