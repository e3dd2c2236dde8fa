"""The official client's requests to a plain-HTTP Ollama, on asyncio's own streams.

httpx reaches the network through httpcore, whose default backend is anyio. On every read,
anyio's asyncio streams stop watching the socket once data has arrived and watch it again before
the next wait (an `epoll_ctl` system call each), and open a cancel scope even when no timeout is
set. A reply streams one token per read, so that is paid a hundred times a second. asyncio's
StreamReader keeps watching the socket and buffers what arrives; a read without a timeout is one
await. Measured on the paced stream of `bench/perf.py` (100 tokens/s, six runs each, turn about,
2026-11-23): llmdeck took 11.2% of a core against 12.9% on anyio.

Only `http://` requests take this path (a local Ollama, where tokens stream fast); anything else
(a redirect to https) goes through httpx's own transport, as without it. The client, its requests
and httpx's handling of answers and errors are unchanged: this is the layer below them.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext, suppress
from typing import Any

import httpcore
import httpx

# httpcore's socket options: (level, option, value) or (level, option, None, length).
SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]

# httpx's default limits, so only the layer below differs.
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)

# Given a transport, httpx stops reading proxies from the environment: with any of these set the
# client is left as the official one makes it.
_PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def plain_http_transport(host: str, tls: ssl.SSLContext) -> httpx.AsyncBaseTransport | None:
    """The transport for a client of `host`, or None to keep httpx's default (an https server, or
    a proxy set in the environment). `tls` verifies any https request the server redirects to."""
    if httpx.URL(host).scheme != "http" or any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return None
    return PlainHttpTransport(tls)


class PlainHttpTransport(httpx.AsyncBaseTransport):
    """`http://` on `AsyncioBackend`; any other scheme on httpx's own transport."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        # httpx's transport maps requests, answers and errors; only its connection pool is ours.
        # verify=False: its own pool, replaced at once, would load a CA store for nothing.
        self._plain = httpx.AsyncHTTPTransport(verify=False, limits=_LIMITS)
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


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if timeout is None:
            # A reply's reads (a model may take minutes to load first): no scope, one await.
            try:
                return await self._reader.read(max_bytes)
            except OSError as error:
                raise httpcore.ReadError(str(error) or type(error).__name__) from error
        async with _mapped(timeout, httpcore.ReadTimeout, httpcore.ReadError):
            return await self._reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        async with _mapped(timeout, httpcore.WriteTimeout, httpcore.WriteError):
            self._writer.write(buffer)
            await self._writer.drain()

    async def aclose(self) -> None:
        self._writer.close()
        with suppress(OSError):  # the server went first: closed either way
            await self._writer.wait_closed()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        # Asked only through a proxy, and with a proxy set this backend is not used.
        raise httpcore.ConnectError("llmdeck's plain-HTTP connections do not carry TLS")

    def get_extra_info(self, info: str) -> Any:
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            # Asked of an idle kept-alive connection before reuse: readable means the server
            # closed it (or sent something unasked), and it is not reused.
            return self._reader.at_eof() or _readable(self._writer.get_extra_info("socket"))
        return None


def _readable(sock: socket.socket | None) -> bool:
    if sock is None or sock.fileno() < 0:
        return True  # gone: the next read ends at once
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        async with _mapped(timeout, httpcore.ConnectTimeout, httpcore.ConnectError):
            # asyncio sets TCP_NODELAY on TCP sockets, as anyio does.
            reader, writer = await asyncio.open_connection(
                host, port, local_addr=(local_address, 0) if local_address else None
            )
        _set_options(writer, socket_options)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[SocketOption] | None = None
    ) -> httpcore.AsyncNetworkStream:
        async with _mapped(timeout, httpcore.ConnectTimeout, httpcore.ConnectError):
            reader, writer = await asyncio.open_unix_connection(path)
        _set_options(writer, socket_options)
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _set_options(writer: asyncio.StreamWriter, options: Iterable[SocketOption] | None) -> None:
    sock = writer.get_extra_info("socket")
    for option in options or ():
        sock.setsockopt(*option)
