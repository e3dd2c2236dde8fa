"""The app as a user drives it: Pilot against the loopback Ollama stand-in."""

from __future__ import annotations

import asyncio

from helpers import fast_settings, free_port, terminal_output, type_text, wait_until, widget_text
from ollama_standin import DEFAULT_REPLY, OllamaStandIn, Reply, StandInModel, start_standin
from textual.widgets import Input
from textual.widgets._footer import FooterKey

from llmdeck.hardware import StaticProbe
from llmdeck.ollama_api import OllamaService
from llmdeck.ui.app import KeyFooter, LlmdeckApp, OfflineBanner, create_app
from llmdeck.ui.chat_pane import AssistantTurn, ChatPane, TurnNote, UserTurn
from llmdeck.ui.hardware_pane import HardwarePane
from llmdeck.ui.models_pane import ModelsPane

SIZE = (120, 40)


def build(host: str, probe: StaticProbe) -> LlmdeckApp:
    return create_app(OllamaService(host), probe, fast_settings(host))


def status(app: LlmdeckApp) -> str:
    return str(app.query_one("#chat-status").render())


def replies(app: LlmdeckApp) -> list[AssistantTurn]:
    return list(app.query(AssistantTurn))


def notes(app: LlmdeckApp) -> list[str]:
    return [str(note.render()) for note in app.query(TurnNote)]


async def models_listed(app: LlmdeckApp) -> None:
    await wait_until(lambda: app.query_one(ModelsPane).row_count > 0)


async def send(app: LlmdeckApp, pilot: object, prompt: str) -> None:
    await type_text(pilot, prompt)  # type: ignore[arg-type]
    await pilot.press("enter")  # type: ignore[attr-defined]


async def test_starts_with_models_listed_input_focused_and_the_largest_model_chosen(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE):
        await models_listed(app)
        models = app.query_one(ModelsPane)
        assert models.sorted_names() == [
            "qwen2.5:14b",
            "llama3.1:8b",
            "gemma2:2b-instruct-q8_0",
            "llama3.2:3b",
        ]
        assert isinstance(app.focused, Input)
        assert app.focused.id == "prompt"
        assert app.query_one(ChatPane).session is not None
        assert app.query_one(ChatPane).session.model == "qwen2.5:14b"  # type: ignore[union-attr]
        assert "Ollama 0.12.10" in app.sub_title
        await wait_until(lambda: "NVIDIA GeForce RTX 4090" in widget_text(app.query_one(HardwarePane)))
        assert not app.query_one(OfflineBanner).has_class("shown")


async def test_prompt_streams_a_reply_and_shows_ollamas_decode_rate(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await models_listed(app)
        await send(app, pilot, "Tell me about llamas")
        chat = app.query_one(ChatPane)
        await wait_until(lambda: not chat.streaming and "tok/s" in status(app))
        assert [str(turn.render()) for turn in app.query(UserTurn)] == ["Tell me about llamas"]
        assert replies(app)[0].source == DEFAULT_REPLY
        final = standin.streams[-1].final
        assert final is not None
        rate = final["eval_count"] / final["eval_duration"] * 1e9
        assert status(app).startswith(f"{rate:.2f} tok/s")
        assert f"{final['eval_count']} tokens" in status(app)
        assert app.query_one("#prompt", Input).value == ""
        # The conversation goes on: the second request carries the first exchange.
        await send(app, pilot, "And alpacas?")
        await wait_until(lambda: len(standin.chat_requests) == 2 and not chat.streaming)
        roles = [message["role"] for message in standin.chat_requests[-1]["messages"]]
        assert roles == ["user", "assistant", "user"]


async def test_live_rate_shows_while_streaming(standin: OllamaStandIn, recorded_probe: StaticProbe) -> None:
    # Paced slowly enough for the live rate to be drawn on a busy machine, then let go once it is.
    reply = Reply(token_delay_s=0.05)
    standin.replies.append(reply)
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await models_listed(app)
        await send(app, pilot, "hi")
        await wait_until(lambda: "(live, llmdeck)" in status(app))
        assert "tok/s" in status(app)
        assert app.query_one(ChatPane).streaming
        reply.token_delay_s = 0.0  # seen: the rest of the reply need not be paced
        await wait_until(lambda: not app.query_one(ChatPane).streaming)


async def test_escape_stops_the_reply_keeps_the_text_and_closes_the_stream(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    standin.replies.append(Reply(token_delay_s=0.03))
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await models_listed(app)
        await send(app, pilot, "Tell me about llamas")
        await wait_until(lambda: bool(standin.streams) and standin.streams[-1].sent_tokens >= 8)
        await pilot.press("escape")
        chat = app.query_one(ChatPane)
        await wait_until(lambda: not chat.streaming)
        partial = replies(app)[0].source
        assert partial, "the partial reply stays on screen"
        assert DEFAULT_REPLY.startswith(partial.rstrip("\n"))
        assert len(partial) < len(DEFAULT_REPLY)
        assert any(note.startswith("stopped by you") for note in notes(app))
        assert status(app).startswith("stopped")
        record = standin.streams[-1]
        assert await asyncio.to_thread(record.done.wait, 5.0)
        assert record.closed_by_client, "Ollama must see the connection close and stop generating"
        assert chat.session is not None and chat.session.turns[-1].content == partial


async def test_unreachable_server_shows_a_banner_then_recovers_when_it_starts(
    recorded_probe: StaticProbe,
) -> None:
    port = free_port()
    host = f"http://127.0.0.1:{port}"
    app = build(host, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        banner = app.query_one(OfflineBanner)
        await wait_until(lambda: banner.has_class("shown"))
        text = str(banner.render())
        assert f"Cannot reach Ollama at {host}" in text
        assert "ollama serve" in text
        # The hardware pane works without Ollama.
        await wait_until(lambda: "RTX 4090" in widget_text(app.query_one(HardwarePane)))
        # Typing a prompt while offline keeps the text and says why nothing happens.
        await send(app, pilot, "hello")
        assert app.query_one("#prompt", Input).value == "hello"
        assert any("not reachable" in str(n.message) for n in app._notifications)
        standin = start_standin(port)
        try:
            await wait_until(lambda: not banner.has_class("shown"), timeout=10)
            await models_listed(app)
            assert app.query_one(ChatPane).online
        finally:
            standin.server.stop()


async def test_choosing_a_model_in_the_list_is_what_the_chat_uses(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await models_listed(app)
        await pilot.press("f2")
        assert isinstance(app.focused, ModelsPane)
        await pilot.press("down", "enter")  # the second largest: llama3.1:8b
        chat = app.query_one(ChatPane)
        assert chat.session is not None and chat.session.model == "llama3.1:8b"
        assert app.focused is not None and app.focused.id == "prompt"
        await send(app, pilot, "hi")
        await wait_until(lambda: bool(standin.chat_requests) and not chat.streaming)
        assert standin.chat_requests[-1]["model"] == "llama3.1:8b"


async def test_models_sort_by_each_column(standin: OllamaStandIn, recorded_probe: StaticProbe) -> None:
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await models_listed(app)
        models = app.query_one(ModelsPane)
        await pilot.press("f2", "s")  # size -> params
        assert models.sort_key == "params"
        assert models.sorted_names()[0] == "qwen2.5:14b"
        assert models.sorted_names()[-1] == "gemma2:2b-instruct-q8_0"
        await pilot.press("s", "s")  # quant, then family
        assert models.sort_key == "family"
        assert models.sorted_names()[0] == "gemma2:2b-instruct-q8_0"
        await pilot.press("s")  # name
        assert models.sorted_names() == sorted(models.sorted_names())
        await pilot.press("r")
        assert models.sorted_names() == sorted(models.sorted_names(), reverse=True)


async def test_load_failure_shows_ollamas_words_and_gives_the_prompt_back(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    # Not a lack of memory (that is retried smaller, see test_stream_faults): nothing to retry.
    message = "llama runner process has terminated: error loading model: unknown model architecture: 'x'"
    standin.replies.append(Reply(status=500, status_error=message))
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await models_listed(app)
        await send(app, pilot, "hello there")
        chat = app.query_one(ChatPane)
        await wait_until(lambda: bool(notes(app)) and not chat.streaming)
        assert message in notes(app)[0]
        assert replies(app) == []
        assert app.query_one("#prompt", Input).value == "hello there"
        assert chat.session is not None and chat.session.turns == []


async def test_error_mid_stream_keeps_the_partial_reply_marked_interrupted(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    standin.replies.append(Reply(error_after_tokens=6, error_message="llama runner process has terminated"))
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await models_listed(app)
        await send(app, pilot, "hello")
        chat = app.query_one(ChatPane)
        await wait_until(lambda: bool(notes(app)) and not chat.streaming)
        assert replies(app)[0].source
        assert notes(app)[0].startswith("reply interrupted:")
        assert "llama runner process has terminated" in notes(app)[0]


async def test_control_sequences_in_a_reply_are_shown_inert(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    standin.replies.append(Reply(text="safe \x1b]0;pwned\x07 text \x1b[2J done"))
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await models_listed(app)
        await send(app, pilot, "hi")
        await wait_until(lambda: not app.query_one(ChatPane).streaming and "tok/s" in status(app))
        shown = replies(app)[0].source
        assert "\x1b" not in shown and "\x07" not in shown
        assert "safe" in shown and "done" in shown
        # History keeps what the model said, byte for byte.
        session = app.query_one(ChatPane).session
        assert session is not None and "\x1b]0;pwned\x07" in session.turns[-1].content


async def test_every_binding_of_llmdeck_has_an_id_and_a_label(recorded_probe: StaticProbe) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    app = build(host, recorded_probe)
    async with app.run_test(size=SIZE):
        owners = [app, *app.screen.walk_children()]
        checked = 0
        for owner in owners:
            if not type(owner).__module__.startswith("llmdeck."):
                continue  # Textual's own widgets (Input, DataTable) bring their editing keys
            # Bindings a class inherits from Textual's widget (the chat tabs' arrows) are Textual's.
            for binding in vars(type(owner)).get("BINDINGS", []):
                checked += 1
                assert getattr(binding, "id", None), f"{type(owner).__name__}: {binding} has no id"
                # Not all are in the footer (it has room for a dozen); F1 lists every one by its label.
                assert getattr(binding, "description", ""), f"{type(owner).__name__}: {binding} has no label"
        assert checked >= 20


async def test_escape_after_the_last_token_keeps_the_whole_reply(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await models_listed(app)
        await send(app, pilot, "hi")
        # Esc twice once the server has sent everything: during or after the wrap-up.
        await wait_until(lambda: bool(standin.streams) and standin.streams[-1].finished)
        await pilot.press("escape", "escape")
        chat = app.query_one(ChatPane)
        await wait_until(lambda: not chat.streaming)
        session = chat.session
        assert session is not None
        assert [turn.role for turn in session.turns] == ["user", "assistant"]
        # Whether the Esc came before or after the last chunk was read, what the model will see
        # next is exactly what the screen shows, and the status is final.
        assert session.turns[-1].content == replies(app)[0].source
        assert "(live, llmdeck)" not in status(app)


async def test_the_footer_offers_esc_only_while_a_reply_streams(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    standin.replies.append(Reply(token_delay_s=0.03))
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await models_listed(app)
        chat = app.query_one(ChatPane)
        footer = app.query_one(KeyFooter)

        def offered() -> bool:
            return "Stop reply" in widget_text(footer)

        await pilot.pause()
        assert not offered()
        idle = widget_text(footer)
        keys_before = list(footer.query(FooterKey))
        await pilot.press("escape")  # nothing to stop: the app carries on
        await send(app, pilot, "hi")
        await wait_until(lambda: chat.streaming and offered())
        # Added in place: a rebuild of the footer took ~25 ms of the event loop, twice per reply.
        assert all(key.is_attached for key in keys_before), "the keys were built anew"
        patched = widget_text(footer)
        keys_patched = list(footer.query(FooterKey))
        footer.refresh(recompose=True)  # what a full rebuild draws now
        await wait_until(lambda: not any(key.is_attached for key in keys_patched))
        await pilot.pause()
        assert widget_text(footer) == patched
        await wait_until(lambda: not chat.streaming)
        await wait_until(lambda: not offered())
        await pilot.pause()
        assert widget_text(footer) == idle
        assert replies(app)[0].source == DEFAULT_REPLY


async def test_double_escape_mid_stream_stops_once(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    standin.replies.append(Reply(token_delay_s=0.03))
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await models_listed(app)
        await send(app, pilot, "hi")
        await wait_until(lambda: bool(standin.streams) and standin.streams[-1].sent_tokens >= 5)
        await pilot.press("escape", "escape")
        chat = app.query_one(ChatPane)
        await wait_until(lambda: not chat.streaming)
        assert sum(note.startswith("stopped by you") for note in notes(app)) == 1
        assert chat.session is not None and chat.session.turns[-1].role == "assistant"


async def test_escape_sequences_from_the_server_never_reach_the_terminal(recorded_probe: StaticProbe) -> None:
    evil = "boom \x1b]0;pwned\x1b\\ \x1b]52;c;ZXZpbA==\x1b\\ end"
    hostile = StandInModel("m\x1b]0;T\x1b\\:1b", 1_000_000, "1B", "Q4_0", "llama", "0" * 64)
    standin = start_standin(models=(hostile,))
    standin.replies.append(Reply(error_after_tokens=1, error_message=evil))
    try:
        app = build(standin.url, recorded_probe)
        async with app.run_test(size=SIZE) as pilot:
            await models_listed(app)
            await send(app, pilot, "hello")
            chat = app.query_one(ChatPane)
            await wait_until(lambda: bool(notes(app)) and not chat.streaming)
            await pilot.pause()
            shown = terminal_output(app)
            assert "boom" in shown and "end" in shown  # the text is there...
            assert "\x1b]0;" not in shown and "\x1b]52;" not in shown  # ...its sequences are not
    finally:
        standin.server.stop()


async def test_a_server_that_stops_later_brings_the_banner_back_and_recovers(
    recorded_probe: StaticProbe,
) -> None:
    port = free_port()
    first = start_standin(port)
    app = build(first.url, recorded_probe)
    async with app.run_test(size=SIZE):
        await models_listed(app)
        banner = app.query_one(OfflineBanner)
        first.server.stop()
        await wait_until(lambda: banner.has_class("shown"), timeout=10)
        assert "not reachable" in app.sub_title
        second = start_standin(port)
        try:
            await wait_until(lambda: not banner.has_class("shown"), timeout=10)
            assert "Ollama 0.12.10" in app.sub_title
        finally:
            second.server.stop()


async def test_a_model_installed_meanwhile_appears_in_the_list(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin.url, recorded_probe)
    async with app.run_test(size=SIZE):
        await models_listed(app)
        new = StandInModel("phi4:14b", 9_053_116_391, "14.7B", "Q4_K_M", "phi3", "1" * 64)
        standin.models[new.name] = new
        await wait_until(lambda: "phi4:14b" in app.query_one(ModelsPane).sorted_names())
