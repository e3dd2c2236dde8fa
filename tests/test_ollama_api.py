"""The Ollama access layer against the loopback stand-in, through the real ollama.AsyncClient."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import free_port
from ollama_standin import DEFAULT_REPLY, OllamaStandIn, Reply

from llmdeck.ollama_api import (
    ChatChunk,
    ModelNotFound,
    OllamaResponseError,
    OllamaService,
    OllamaUnreachable,
    StreamInterrupted,
)

QUESTION = [{"role": "user", "content": "Tell me about llamas"}]


async def collect(service: OllamaService, model: str = "llama3.2:3b") -> list[ChatChunk]:
    return [chunk async for chunk in service.chat(model, QUESTION)]


async def test_version_and_installed_models(ollama: OllamaService) -> None:
    assert await ollama.version() == "0.12.10"
    models = {model.name: model for model in await ollama.list_models()}
    assert set(models) == {"llama3.1:8b", "qwen2.5:14b", "llama3.2:3b", "gemma2:2b-instruct-q8_0"}
    llama = models["llama3.1:8b"]
    assert (llama.size_bytes, llama.parameter_size, llama.quantization, llama.family) == (
        4_920_753_328,
        "8.0B",
        "Q4_K_M",
        "llama",
    )


async def test_chat_streams_the_reply_and_ends_with_ollamas_figures(
    ollama: OllamaService, standin: OllamaStandIn
) -> None:
    chunks = await collect(ollama)
    assert "".join(chunk.content for chunk in chunks) == DEFAULT_REPLY
    assert len(chunks) > 20, "the reply must arrive token by token, not in one piece"
    assert all(chunk.stats is None for chunk in chunks[:-1])
    final = chunks[-1].stats
    sent = standin.streams[-1].final
    assert final is not None and sent is not None
    assert final.eval_count == sent["eval_count"]
    assert final.eval_duration_ns == sent["eval_duration"]
    assert final.prompt_eval_count == sent["prompt_eval_count"]
    assert final.done_reason == "stop"
    request = standin.chat_requests[-1]
    assert request["model"] == "llama3.2:3b"
    assert request["messages"] == QUESTION
    assert request["stream"] is True


async def test_options_reach_ollama_unchanged(ollama: OllamaService, standin: OllamaStandIn) -> None:
    [_ async for _ in ollama.chat("llama3.2:3b", QUESTION, {"num_ctx": 8192, "num_gpu": 20})]
    assert standin.chat_requests[-1]["options"] == {"num_ctx": 8192, "num_gpu": 20}


async def test_unknown_model_is_reported_as_such(ollama: OllamaService) -> None:
    with pytest.raises(ModelNotFound, match="not installed") as caught:
        await collect(ollama, model="llama9:405b")
    assert caught.value.server_message == "model 'llama9:405b' not found"


async def test_load_failure_keeps_ollamas_words(ollama: OllamaService, standin: OllamaStandIn) -> None:
    message = "model requires more system memory (12.3 GiB) than is available (7.1 GiB)"
    standin.replies.append(Reply(status=500, status_error=message))
    with pytest.raises(OllamaResponseError) as caught:
        await collect(ollama)
    assert caught.value.status_code == 500
    assert caught.value.message == message


async def test_error_line_mid_stream_is_raised_after_the_tokens_before_it(
    ollama: OllamaService, standin: OllamaStandIn
) -> None:
    standin.replies.append(Reply(error_after_tokens=5, error_message="llama runner process has terminated"))
    received: list[str] = []
    with pytest.raises(OllamaResponseError, match="llama runner process has terminated") as caught:
        async for chunk in ollama.chat("llama3.2:3b", QUESTION):
            received.append(chunk.content)
    assert len(received) == 5
    assert caught.value.status_code == -1


async def test_garbled_stream_is_an_interruption_not_a_crash(standin: OllamaStandIn) -> None:
    from werkzeug.wrappers import Response

    standin.server.clear()
    standin.server.expect_request("/api/chat", method="POST").respond_with_response(
        Response('{"model":"x","message":{"role":"assistant","content":"hi"},"done":false}\n{"mod', 200)
    )
    service = OllamaService(standin.url)
    try:
        with pytest.raises(StreamInterrupted, match="cannot read"):
            await collect(service)
    finally:
        await service.aclose()


async def test_unreachable_server_is_one_clear_error_for_every_call() -> None:
    host = f"http://127.0.0.1:{free_port()}"
    service = OllamaService(host, connect_timeout_s=1.0)
    try:
        for call in (service.version(), service.list_models(), collect(service)):
            with pytest.raises(OllamaUnreachable, match=f"cannot reach Ollama at {host}"):
                await call
    finally:
        await service.aclose()


async def test_closing_the_stream_early_closes_the_http_connection(
    ollama: OllamaService, standin: OllamaStandIn
) -> None:
    standin.replies.append(Reply(token_delay_s=0.02))
    stream = ollama.chat("llama3.2:3b", QUESTION)
    async for _ in stream:
        if standin.streams and standin.streams[-1].sent_tokens >= 3:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    record = standin.streams[-1]
    # The server notices at its next write that nobody listens and stops generating.
    assert await asyncio.to_thread(record.done.wait, 5.0)
    assert record.closed_by_client
    assert record.sent_tokens < 20


def serve_raw(standin: OllamaStandIn, path: str, body: bytes, status: int = 200) -> None:
    from werkzeug.wrappers import Response

    standin.server.clear()
    method = "POST" if path == "/api/chat" else "GET"
    standin.server.expect_request(path, method=method).respond_with_response(Response(body, status))


async def test_a_stream_that_ends_without_done_is_an_interruption(standin: OllamaStandIn) -> None:
    line = b'{"model":"x","message":{"role":"assistant","content":"hi"},"done":false}\n'
    serve_raw(standin, "/api/chat", line * 3)
    service = OllamaService(standin.url)
    try:
        with pytest.raises(StreamInterrupted, match="before Ollama said it was done"):
            await collect(service)
    finally:
        await service.aclose()


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/chat", b"[1]\n", 200),  # a JSON line that is not an object
        ("/api/chat", b'"x"', 500),  # an error body that is JSON but not an object
        ("/api/version", b"[]", 200),
        ("/api/version", b"\xff\xfe\x00", 200),
        ("/api/tags", b"[]", 200),
        ("/api/tags", b"null", 200),
    ],
)
async def test_malformed_answers_become_ollama_errors_not_crashes(
    standin: OllamaStandIn, path: str, body: bytes, status: int
) -> None:
    from llmdeck.ollama_api import OllamaError

    serve_raw(standin, path, body, status)
    service = OllamaService(standin.url)
    try:
        calls = {
            "/api/chat": lambda: collect(service),
            "/api/version": service.version,
            "/api/tags": service.list_models,
        }
        with pytest.raises(OllamaError):
            await calls[path]()
    finally:
        await service.aclose()


async def test_running_models_and_unloading(ollama: OllamaService, standin: OllamaStandIn) -> None:
    assert await ollama.running() == []
    await collect(ollama, model="llama3.2:3b")
    [running] = await ollama.running()
    assert running.name == "llama3.2:3b"
    assert running.size == running.size_vram == standin.models["llama3.2:3b"].size
    assert running.context_length == 4096
    assert running.expires_at is not None
    await ollama.unload("llama3.2:3b")
    assert await ollama.running() == []
    assert standin.chat_requests[-1]["keep_alive"] == 0 and standin.chat_requests[-1]["messages"] == []


def test_a_client_that_cannot_be_set_up_is_an_ollama_error_not_a_crash(tmp_path: Path) -> None:
    # The client is imported on first use (in a thread): a failure there must reach callers as
    # every other Ollama failure does. A CA bundle that does not exist makes importing it fail.
    # In a fresh interpreter: in this one the client was imported long ago.
    script = (
        "import asyncio, llmdeck.ollama_api as api\n"
        "service = api.OllamaService('http://127.0.0.1:9')\n"
        "for call in (service.version, service.list_models):\n"
        "    try:\n"
        "        asyncio.run(call())\n"
        "    except api.ClientUnavailable as error:\n"
        "        print(error)\n"
    )
    env = {**os.environ, "SSL_CERT_FILE": str(tmp_path / "missing-ca.pem")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("cannot set up the Ollama client: FileNotFoundError") for line in lines)
