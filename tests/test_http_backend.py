"""The chat client's connections on asyncio's streams (llmdeck.http_backend), over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpcore
import httpx
import pytest
from helpers import free_port, wait_until
from ollama_standin import DEFAULT_REPLY, OllamaStandIn, Reply

from llmdeck.http_backend import AsyncioBackend, PlainHttpTransport, plain_http_transport
from llmdeck.ollama_api import OllamaService, OllamaUnreachable, StreamInterrupted

QUESTION = [{"role": "user", "content": "Tell me about llamas"}]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    return head + await reader.readexactly(length)


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


async def test_a_paced_reply_arrives_whole_without_the_socket_paused_per_token(
    ollama: OllamaService, standin: OllamaStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What makes it light: on httpx's default backend every read paused and resumed the socket's
    # watch (two system calls a token); here the socket is watched throughout.
    from asyncio import selector_events

    pauses: list[object] = []
    original = selector_events._SelectorTransport.pause_reading  # type: ignore[attr-defined]

    def counted(transport: object) -> None:
        pauses.append(transport)
        original(transport)

    monkeypatch.setattr(selector_events._SelectorTransport, "pause_reading", counted)  # type: ignore[attr-defined]
    standin.replies.append(Reply(token_delay_s=0.002))
    chunks = [chunk async for chunk in ollama.chat("llama3.2:3b", QUESTION)]
    assert "".join(chunk.content for chunk in chunks) == DEFAULT_REPLY
    assert len(chunks) > 20
    assert pauses == []


async def test_stopping_a_reply_closes_its_connection_so_the_server_stops() -> None:
    closed = asyncio.Event()

    async def endless_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            while True:
                line = b'{"model":"m","message":{"role":"assistant","content":"word "},"done":false}\n'
                writer.write(b"%x\r\n%s\r\n" % (len(line), line))
                await writer.drain()
                await asyncio.sleep(0.01)
        except (ConnectionError, OSError):
            closed.set()

    async with tcp_server(endless_reply) as port:
        service = OllamaService(f"http://127.0.0.1:{port}")
        stream = service.chat("m", QUESTION)
        received = [await anext(stream) for _ in range(3)]
        await stream.aclose()
        await asyncio.wait_for(closed.wait(), 5)
        await service.aclose()
    assert [chunk.content for chunk in received] == ["word "] * 3


async def test_a_kept_alive_connection_the_server_closed_is_not_reused() -> None:
    connections = 0

    async def answer_once_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(ok(b'{"version":"0.12.10"}'))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # no "Connection: close" said: the client finds out by itself

    async with tcp_server(answer_once_then_hang_up) as port:
        transport = PlainHttpTransport(ssl.create_default_context())
        async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{port}") as client:
            first = await client.get("/api/version")
            await asyncio.sleep(0.3)
            second = await client.get("/api/version")
    assert first.json() == second.json() == {"version": "0.12.10"}
    assert connections == 2


async def test_a_server_that_never_answers_times_out_and_a_closed_port_is_refused() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    backend = AsyncioBackend()
    async with tcp_server(silent) as port:
        stream = await backend.connect_tcp("127.0.0.1", port, timeout=2)
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(1024, timeout=0.1)
        await stream.aclose()
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("127.0.0.1", free_port(), timeout=2)
    service = OllamaService(f"http://127.0.0.1:{free_port()}", connect_timeout_s=2)
    with pytest.raises(OllamaUnreachable):
        [chunk async for chunk in service.chat("m", QUESTION)]
    await service.aclose()


async def test_https_goes_through_httpx_own_transport(standin: OllamaStandIn) -> None:
    # A plain-HTTP server asked for TLS: the handshake fails in httpx's transport (an SSL
    # error), not in this one, which carries no TLS.
    port = int(standin.url.rsplit(":", 1)[1])
    transport = PlainHttpTransport(ssl.create_default_context())
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError) as failure:
            await client.get(f"https://127.0.0.1:{port}/api/version")
    assert "SSL" in str(failure.value) or "ssl" in str(failure.value)


async def test_with_a_proxy_in_the_environment_the_client_is_the_official_one(
    standin: OllamaStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxied: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        proxied.append(await read_request(reader))
        writer.write(ok(b'{"models":[]}'))
        await writer.drain()
        writer.close()

    context = ssl.create_default_context()
    assert isinstance(plain_http_transport(standin.url, context), PlainHttpTransport)
    assert plain_http_transport("https://ollama.example.com:443", context) is None
    monkeypatch.setenv("NO_PROXY", "localhost")  # exceptions to a proxy, and no proxy: ours
    assert isinstance(plain_http_transport(standin.url, context), PlainHttpTransport)
    async with tcp_server(proxy) as port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert plain_http_transport(standin.url, context) is None
        service = OllamaService(standin.url)
        assert await service.list_models() == []
        await service.aclose()
    await wait_until(lambda: bool(proxied))
    assert proxied[0].startswith(f"GET {standin.url}/api/tags ".encode())


async def test_what_arrived_before_the_connection_was_reset_is_read_before_the_failure() -> None:
    # A server or proxy aborting mid-reply while llmdeck was busy: the tokens it had sent are
    # shown, then the failure (asyncio's StreamReader raised first and dropped them).
    line = b'{"model":"m","message":{"role":"assistant","content":"word "},"done":false}\n'

    async def five_tokens_then_reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        writer.write(b"%x\r\n%s\r\n" % (len(line), line))
        await writer.drain()
        await asyncio.sleep(0.1)  # the client has read the first token and is busy
        for _ in range(4):
            writer.write(b"%x\r\n%s\r\n" % (len(line), line))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        writer.transport.abort()  # a reset, not an orderly end

    received: list[str] = []
    async with tcp_server(five_tokens_then_reset) as port:
        service = OllamaService(f"http://127.0.0.1:{port}")
        stream = service.chat("m", QUESTION)
        first = await anext(stream)
        await asyncio.sleep(0.3)  # busy drawing: the rest and the reset arrive meanwhile
        with pytest.raises(StreamInterrupted):
            async for chunk in stream:
                received.append(chunk.content)
        await service.aclose()
    assert [first.content, *received] == ["word "] * 5


async def test_without_poll_a_kept_alive_connection_is_checked_with_select_and_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Windows has no select.poll: before reusing a connection, readiness is asked with select.
    monkeypatch.delattr(select, "poll")
    connections = 0

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await read_request(reader)
                writer.write(ok(b'{"version":"0.12.10"}'))
                await writer.drain()

    async with tcp_server(keep_alive) as port:
        transport = PlainHttpTransport(ssl.create_default_context())
        async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{port}") as client:
            answers = [(await client.get("/api/version")).json() for _ in range(3)]
    assert answers == [{"version": "0.12.10"}] * 3
    assert connections == 1
