"""Terminal sizes: usable at 80x24 and wider, no crash at 20x10, and resizing mid-reply loses nothing."""

from __future__ import annotations

import pytest
from helpers import fast_settings, type_text, wait_until, widget_text
from ollama_standin import DEFAULT_REPLY, OllamaStandIn, Reply
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Input

from llmdeck.hardware import StaticProbe
from llmdeck.ollama_api import OllamaService
from llmdeck.ui.app import LlmdeckApp, create_app
from llmdeck.ui.chat_pane import AssistantTurn, ChatPane
from llmdeck.ui.models_pane import ModelsPane

MODELS = ["qwen2.5:14b", "llama3.1:8b", "gemma2:2b-instruct-q8_0", "llama3.2:3b"]


def build(standin: OllamaStandIn, probe: StaticProbe) -> LlmdeckApp:
    return create_app(OllamaService(standin.url), probe, fast_settings(standin.url))


def screen_text(app: LlmdeckApp) -> str:
    """Every character the terminal shows, row by row."""
    return widget_text(app.screen)


def on_screen(widget: Widget) -> bool:
    """The widget is drawn with at least one row, wholly inside the terminal."""
    region = widget.region
    return region.height > 0 and region.width > 0 and widget.screen.region.contains_region(region)


def reply_done(app: LlmdeckApp) -> bool:
    chat = app.query_one(ChatPane)
    return not chat.streaming and chat.session is not None and len(chat.session.turns) == 2


async def models_listed(app: LlmdeckApp) -> None:
    await wait_until(lambda: app.query_one(ModelsPane).row_count == len(MODELS))


async def send(pilot: Pilot[None], prompt: str) -> None:
    await type_text(pilot, prompt)
    await pilot.press("enter")


def assert_usable(app: LlmdeckApp) -> None:
    shown = screen_text(app)
    for name in MODELS:
        assert name in shown, f"model row {name!r} is not on screen:\n{shown}"
    assert on_screen(app.query_one("#prompt", Input))
    status = app.query_one("#chat-status")
    assert on_screen(status)
    first_words = str(status.render()).split("·")[0].strip()
    assert first_words and first_words in shown, f"status {first_words!r} not on screen:\n{shown}"


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (300, 50)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_models_prompt_and_status_are_on_screen_and_a_reply_can_be_read(
    size: tuple[int, int], standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin, recorded_probe)
    async with app.run_test(size=size) as pilot:
        await models_listed(app)
        await pilot.pause()
        assert_usable(app)
        await send(pilot, "Tell me about llamas")
        await wait_until(lambda: reply_done(app) and "tok/s" in str(app.query_one("#chat-status").render()))
        await pilot.pause()
        # The transcript follows the reply: its end is what the user reads when it is done.
        shown = screen_text(app)
        assert "alpaca" in shown and "60 kg" in shown, shown
        assert "tok/s" in shown
        # The hardware pane, the store and the suggestion may take the column's height: the
        # model list keeps its rows all the same.
        assert_usable(app)


async def test_a_tiny_terminal_does_not_crash_and_the_reply_is_kept(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin, recorded_probe)
    async with app.run_test(size=(20, 10)) as pilot:
        await models_listed(app)
        await send(pilot, "hi")
        await wait_until(lambda: reply_done(app))
        await pilot.pause()
        assert screen_text(app).strip(), "something is drawn"
        # Back to a usable size, the conversation is all there.
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert_usable(app)
        assert [turn.source for turn in app.query(AssistantTurn)] == [DEFAULT_REPLY]


async def test_resizing_while_a_reply_streams_loses_nothing(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    # Slow enough that every resize lands mid-reply: one takes up to a second to lay out here.
    reply = Reply(token_delay_s=0.08)
    standin.replies.append(reply)
    app = build(standin, recorded_probe)
    async with app.run_test(size=(120, 40)) as pilot:
        await models_listed(app)
        await send(pilot, "Tell me about llamas")
        await wait_until(lambda: bool(standin.streams) and standin.streams[-1].sent_tokens >= 5)
        chat = app.query_one(ChatPane)
        for width, height in [(20, 10), (300, 50), (33, 12), (80, 24)]:
            assert chat.streaming, f"the reply ended before the resize to {width}x{height}"
            await pilot.resize_terminal(width, height)
        # The stand-in reads the delay before each token: the rest of the reply comes at once,
        # after the last resize, instead of seconds of tokens no resize lands among.
        reply.token_delay_s = 0.0
        await wait_until(lambda: reply_done(app))
        await pilot.pause()
        assert [turn.source for turn in app.query(AssistantTurn)] == [DEFAULT_REPLY]
        assert chat.session is not None and chat.session.turns[-1].content == DEFAULT_REPLY
        assert app.size == (80, 24)
        assert_usable(app)
