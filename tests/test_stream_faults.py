"""Faults while a reply streams, injected for real, and what the user sees and keeps."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from helpers import fast_settings, free_port, wait_until
from ollama_standin import DEFAULT_REPLY, OllamaStandIn, Reply, split_tokens
from textual.pilot import Pilot
from textual.widgets import Input

from llmdeck.hardware import StaticProbe
from llmdeck.history import History, history_path
from llmdeck.ollama_api import OllamaService
from llmdeck.ui.app import LlmdeckApp, create_app
from llmdeck.ui.chat_pane import AssistantTurn, ChatPane, TurnNote, UserTurn
from llmdeck.ui.models_pane import ModelsPane
from llmdeck.ui.pull_screen import PullScreen

SIZE = (120, 40)
STANDIN = Path(__file__).with_name("ollama_standin.py")


def build(url: str, probe: StaticProbe) -> LlmdeckApp:
    return create_app(OllamaService(url), probe, fast_settings(url))


def chat_of(app: LlmdeckApp) -> ChatPane:
    return app.query_one(ChatPane)


def last_reply_is(app: LlmdeckApp, text: str) -> bool:
    # While a prompt is sent again the conversation is briefly empty: not yet, rather than an error.
    turns = chat_of(app).active.turns
    return bool(turns) and turns[-1].content == text


def notes(app: LlmdeckApp) -> list[str]:
    return [str(note.render()) for note in chat_of(app).query(TurnNote)]


def status(app: LlmdeckApp) -> str:
    return str(app.query_one("#chat-status").render())


def conversation_requests(standin: OllamaStandIn) -> list[dict[str, object]]:
    return [request for request in standin.chat_requests if request.get("messages")]


async def ready(app: LlmdeckApp) -> None:
    await wait_until(lambda: app.query_one(ModelsPane).row_count > 0 and app.history_restored)
    await wait_until(lambda: chat_of(app).session is not None and bool(app.fits), timeout=15)


async def type_prompt(app: LlmdeckApp, pilot: Pilot[None], prompt: str) -> None:
    box = app.query_one("#prompt", Input)
    box.focus()
    box.value = prompt  # as pasted: typing it key by key costs a frame per key
    await pilot.press("enter")


async def settled(app: LlmdeckApp) -> None:
    await wait_until(lambda: not chat_of(app).streaming)
    await wait_until(
        lambda: chat_of(app)._reply_worker is not None and chat_of(app)._reply_worker.is_finished
    )


async def cut_off_reply_to(app: LlmdeckApp, pilot: Pilot[None], prompt: str) -> None:
    """Send `prompt`; the stand-in's next reply is cut off: wait until the chat says so."""
    await ready(app)
    await type_prompt(app, pilot, prompt)
    await wait_until(lambda: any("interrupted" in note for note in notes(app)))
    await settled(app)


def start_server_process(port: int, token_delay: float) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(STANDIN),
            "--port",
            str(port),
            "--token-delay",
            str(token_delay),
            "--load-delay",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/version", timeout=0.5)
            return process
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the stand-in did not start"
            time.sleep(0.05)


async def test_server_killed_mid_reply_keeps_the_partial_reply_and_ctrl_t_resends(
    recorded_probe: StaticProbe,
) -> None:
    port = free_port()
    server = start_server_process(port, token_delay=0.05)
    try:
        app = build(f"http://127.0.0.1:{port}", recorded_probe)
        async with app.run_test(size=SIZE) as pilot:
            await ready(app)
            await type_prompt(app, pilot, "Tell me about llamas")
            await wait_until(lambda: chat_of(app).tokens_flowing)
            await wait_until(lambda: len(app.query(AssistantTurn).first().source) > 20)
            server.kill()  # SIGKILL: the server process dies with the connection open
            server.wait()
            await settled(app)
            partial = chat_of(app).active.turns[-1].content
            assert partial and DEFAULT_REPLY.startswith(partial) and partial != DEFAULT_REPLY
            assert any("interrupted" in note and "ctrl+t" in note for note in notes(app))
            assert app.query(AssistantTurn).first().source == partial  # still on screen
            # The server comes back; the banner goes; one key sends the prompt again.
            # The app must have seen the server gone before "back" means the new one.
            await wait_until(lambda: app.server_version is None)
            # ctrl+t while the server is gone is turned down, and the conversation stays as it was.
            await pilot.press("ctrl+t", "ctrl+t")
            assert chat_of(app).active.turns[-1].content == partial
            server = start_server_process(port, token_delay=0.0)
            await wait_until(lambda: app.server_version is not None)
            await pilot.press("ctrl+t")
            await wait_until(lambda: last_reply_is(app, DEFAULT_REPLY))
            await settled(app)
            prompts = [str(turn.render()) for turn in chat_of(app).query(UserTurn)]
            assert prompts == ["Tell me about llamas", "Tell me about llamas"]
            # The model is asked again without the cut-off answer in its context.
            assert [turn.role for turn in chat_of(app).active.turns] == ["user", "assistant"]
    finally:
        server.kill()
        server.wait()


async def test_a_retry_that_gets_no_answer_keeps_the_first_attempt_in_the_history(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    standin.replies.extend([Reply(drop_after_tokens=10), Reply(status=500, status_error="runner crashed")])
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await cut_off_reply_to(app, pilot, "hello")
        await pilot.press("ctrl+t")
        await wait_until(lambda: any("runner crashed" in note for note in notes(app)))
        await settled(app)
        chat_id = chat_of(app).active.chat_id
    # The retry got nothing, but the cut-off first attempt is still kept, in its chat.
    history = History(history_path())
    try:
        [stored] = history.chats()
    finally:
        history.close()
    assert stored.id == chat_id
    assert [(m.role, m.content, m.retried) for m in stored.messages] == [
        ("user", "hello", True),
        ("assistant", "".join(split_tokens(DEFAULT_REPLY)[:10]), True),
    ]


async def test_connection_dropped_mid_reply_then_resent_without_the_partial(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    standin.replies.append(Reply(drop_after_tokens=10))
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await cut_off_reply_to(app, pilot, "hello")
        assert chat_of(app).active.turns[-1].content == "".join(split_tokens(DEFAULT_REPLY)[:10])
        await pilot.press("ctrl+t")
        await wait_until(lambda: len(conversation_requests(standin)) == 2)
        await settled(app)
        assert conversation_requests(standin)[-1]["messages"] == [{"role": "user", "content": "hello"}]
        assert chat_of(app).active.turns[-1].content == DEFAULT_REPLY
    cut_off = "".join(split_tokens(DEFAULT_REPLY)[:10])
    # Restarted, the chat shows both attempts as before, and the model still gets only the second.
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await wait_until(lambda: len(app.query(AssistantTurn)) == 2)
        assert [turn.source for turn in app.query(AssistantTurn)] == [cut_off, DEFAULT_REPLY]
        assert [str(turn.render()) for turn in app.query(UserTurn)] == ["hello", "hello"]
        await type_prompt(app, pilot, "and then?")
        await wait_until(lambda: len(conversation_requests(standin)) == 3)
        await settled(app)
        assert conversation_requests(standin)[-1]["messages"] == [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": DEFAULT_REPLY},
            {"role": "user", "content": "and then?"},
        ]


async def test_garbage_in_the_stream_is_an_error_and_the_chat_goes_on(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    standin.replies.append(Reply(garbage_after_tokens=5))
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await type_prompt(app, pilot, "hello")
        await wait_until(lambda: any("cannot read" in note for note in notes(app)))
        await settled(app)
        await type_prompt(app, pilot, "again")
        await wait_until(lambda: last_reply_is(app, DEFAULT_REPLY))


async def test_a_stall_shows_and_escape_still_stops_it(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    standin.replies.append(Reply(stall_after_tokens=4, stall_s=30.0))
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        chat_of(app).stall_after_s = 0.5
        await type_prompt(app, pilot, "hello")
        await wait_until(lambda: "no tokens for" in status(app), timeout=5)
        assert "Esc stops" in status(app)
        await pilot.press("escape")
        await settled(app)
        assert any("stopped by you" in note for note in notes(app))
        record = standin.streams[-1]
        assert record.sent_tokens == 4 and not record.finished


async def test_unknown_model_says_so_and_ctrl_t_offers_the_pull(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        model = chat_of(app).active.model
        standin.replies.append(Reply(status=404, status_error=f"model '{model}' not found"))
        await type_prompt(app, pilot, "hello")
        await wait_until(
            lambda: any("not found" in note and f"ctrl+t to pull {model}" in note for note in notes(app))
        )
        await settled(app)
        assert app.query_one("#prompt", Input).value == "hello"  # the text is kept
        await pilot.press("ctrl+t")
        await wait_until(lambda: isinstance(app.screen, PullScreen))
        assert app.screen.query_one(Input).value == model


async def test_queue_full_and_cancelled_keep_the_prompt(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        standin.replies.append(
            Reply(
                status=503, status_error="server busy, please try again.  maximum pending requests exceeded"
            )
        )
        await type_prompt(app, pilot, "first")
        await wait_until(lambda: any("queue is full" in note for note in notes(app)))
        await settled(app)
        prompt = app.query_one("#prompt", Input)
        assert prompt.value == "first"
        standin.replies.append(Reply(status=499, status_error="request canceled"))
        await pilot.press("enter")
        await wait_until(lambda: any("cancelled the request" in note for note in notes(app)))
        await settled(app)
        assert prompt.value == "first"
        # And the third time it goes through, once.
        await pilot.press("enter")
        await wait_until(lambda: last_reply_is(app, DEFAULT_REPLY))
        assert [turn.role for turn in chat_of(app).active.turns] == ["user", "assistant"]


async def test_out_of_vram_on_load_retries_with_fewer_gpu_layers_and_says_so(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        model = chat_of(app).active.model
        layers = app.fits[model].plan.layers_total
        assert app.fits[model].plan.num_gpu == layers  # the plan says it all fits
        # The GPU holds less than planned: two steps of a tenth of the layers are needed.
        standin.max_gpu_layers[model] = layers - 6
        await type_prompt(app, pilot, "hello")
        await wait_until(
            lambda: chat_of(app).active.turns[-1:] != [] and last_reply_is(app, DEFAULT_REPLY),
            timeout=15,
        )
        sent = [request.get("options") or {} for request in conversation_requests(standin)]
        step = -(-layers // 10)
        assert [options.get("num_gpu") for options in sent] == [None, layers - step, layers - 2 * step]
        shown = notes(app)
        assert any("cudaMalloc failed" in note for note in shown)
        assert any(
            f"retrying with {layers - 2 * step} of {layers} layers on the GPU" in note for note in shown
        )
        # The plan and the next turns keep the load that worked.
        assert app.fits[model].plan.num_gpu == layers - 2 * step
        await type_prompt(app, pilot, "again")
        await wait_until(lambda: len(conversation_requests(standin)) == 4)
        assert conversation_requests(standin)[-1]["options"]["num_gpu"] == layers - 2 * step  # type: ignore[index]
        assert [str(turn.render()) for turn in chat_of(app).query(UserTurn)].count("hello") == 1


async def test_out_of_system_memory_halves_the_context(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        num_ctx = app.fits[chat_of(app).active.model].plan.num_ctx
        standin.replies.append(
            Reply(
                status=500,
                status_error="model requires more system memory (12.0 GiB) than is available (7.6 GiB)",
            )
        )
        await type_prompt(app, pilot, "hello")
        await wait_until(
            lambda: chat_of(app).active.turns[-1:] != [] and last_reply_is(app, DEFAULT_REPLY),
            timeout=15,
        )
        assert conversation_requests(standin)[-1]["options"]["num_ctx"] == num_ctx // 2  # type: ignore[index]
        assert any(f"context of {num_ctx // 2} tokens" in note for note in notes(app))
