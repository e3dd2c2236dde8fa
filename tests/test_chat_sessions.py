"""Several chats in tabs, each with its own model, options and system prompt, kept across runs."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import fast_settings, type_text, wait_until
from ollama_standin import DEFAULT_REPLY, OllamaStandIn, Reply
from textual.pilot import Pilot
from textual.widgets import Input, Tabs

from llmdeck.hardware import StaticProbe
from llmdeck.history import History, history_path
from llmdeck.ollama_api import OllamaService
from llmdeck.ui import chat_pane, markdown_blocks
from llmdeck.ui.app import LlmdeckApp, create_app
from llmdeck.ui.chat_pane import AssistantTurn, ChatPane, TurnNote, UserTurn
from llmdeck.ui.models_pane import ModelsPane
from llmdeck.ui.text_prompt import AskText

SIZE = (120, 40)


def build(standin: OllamaStandIn, probe: StaticProbe, history_file: Path | None = None) -> LlmdeckApp:
    return create_app(
        OllamaService(standin.url), probe, fast_settings(standin.url), history_file=history_file
    )


def chat_of(app: LlmdeckApp) -> ChatPane:
    return app.query_one(ChatPane)


def tab_labels(app: LlmdeckApp) -> list[str]:
    return [str(tab.label) for tab in app.query_one(Tabs).query("Tab")]


def visible_user_turns(app: LlmdeckApp) -> list[str]:
    transcript = chat_of(app).transcript()
    return [str(turn.render()) for turn in transcript.query(UserTurn)]


def conversation_requests(standin: OllamaStandIn) -> list[dict[str, object]]:
    # Loading a model ahead is an empty chat request; only real turns count here.
    return [request for request in standin.chat_requests if request.get("messages")]


async def ready(app: LlmdeckApp) -> None:
    await wait_until(lambda: app.query_one(ModelsPane).row_count > 0 and app.history_restored)
    await wait_until(lambda: chat_of(app).session is not None and bool(app.fits))


async def say(app: LlmdeckApp, pilot: Pilot[None], prompt: str) -> None:
    chat = chat_of(app)
    turns = len(chat.active.turns)
    box = app.query_one("#prompt", Input)
    box.focus()
    box.value = prompt  # as pasted: typing it key by key costs a frame per key
    await pilot.press("enter")
    # The stand-in answers at once: wait for the reply to be kept, not for streaming to be seen.
    await wait_until(lambda: len(chat.active.turns) == turns + 2 and not chat.streaming)
    await pilot.pause()


async def choose_model(app: LlmdeckApp, pilot: Pilot[None], name: str) -> None:
    models = app.query_one(ModelsPane)
    models.focus()
    models.move_cursor(row=models.sorted_names().index(name))
    await pilot.press("enter")
    await wait_until(lambda: chat_of(app).session is not None and chat_of(app).session.model == name)  # type: ignore[union-attr]


async def answer_dialog(pilot: Pilot[None], text: str | None, *, save_key: str = "enter") -> None:
    await wait_until(lambda: isinstance(pilot.app.screen, AskText))
    if text is not None:
        field = pilot.app.screen.query_one("#text")
        if isinstance(field, Input):
            field.value = text
        else:
            field.text = text  # type: ignore[attr-defined]
    await pilot.press(save_key)
    await wait_until(lambda: not isinstance(pilot.app.screen, AskText))


async def test_each_chat_has_its_own_tab_transcript_and_conversation(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await say(app, pilot, "Tell me about llamas")
        # The first prompt names the chat.
        assert tab_labels(app) == ["Tell me about llamas"]
        await pilot.press("ctrl+n")
        assert tab_labels(app) == ["Tell me about llamas", "Chat 2"]
        assert visible_user_turns(app) == []
        await say(app, pilot, "And alpacas?")
        # The new chat's request carries only its own turn, not the other chat's.
        sent = conversation_requests(standin)[-1]["messages"]
        assert sent == [{"role": "user", "content": "And alpacas?"}]
        await pilot.press("ctrl+pageup")
        assert visible_user_turns(app) == ["Tell me about llamas"]
        await pilot.press("ctrl+pagedown")
        assert visible_user_turns(app) == ["And alpacas?"]


async def test_a_chat_keeps_its_model_when_another_chat_switches(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        first_model = chat_of(app).active.model
        await say(app, pilot, "hello")
        await pilot.press("ctrl+n")
        await choose_model(app, pilot, "llama3.2:3b")
        await say(app, pilot, "hi small model")
        assert conversation_requests(standin)[-1]["model"] == "llama3.2:3b"
        chat_of(app).focus()
        await pilot.press("ctrl+pageup")
        await pilot.pause()
        assert chat_of(app).active.model == first_model
        # The model list follows the chat in front.
        assert app.query_one(ModelsPane).active == first_model
        await say(app, pilot, "again")
        assert conversation_requests(standin)[-1]["model"] == first_model


async def test_system_prompt_is_sent_first_and_shown(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await pilot.press("f7")
        await answer_dialog(pilot, "You answer like a pirate.", save_key="ctrl+s")
        assert "You answer like a pirate." in str(app.query_one("#chat-system").render())
        await say(app, pilot, "hello")
        sent = conversation_requests(standin)[-1]["messages"]
        assert sent[0] == {"role": "system", "content": "You answer like a pirate."}
        assert sent[1] == {"role": "user", "content": "hello"}
        # Esc leaves it as it was.
        await pilot.press("f7")
        await answer_dialog(pilot, "something else", save_key="escape")
        assert chat_of(app).active.system_prompt == "You answer like a pirate."


async def test_chats_are_restored_on_reopen_with_model_options_and_system_prompt(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await pilot.press("f7")
        await answer_dialog(pilot, "Be brief.", save_key="ctrl+s")
        await say(app, pilot, "first chat prompt")
        await pilot.press("f6")
        await answer_dialog(pilot, "Llama notes")
        await pilot.press("ctrl+n")
        await choose_model(app, pilot, "llama3.2:3b")
        await say(app, pilot, "second chat prompt")
        options_second = dict(chat_of(app).active.options)

    reopened = build(standin, recorded_probe)
    async with reopened.run_test(size=SIZE) as pilot:
        await ready(reopened)
        chat = chat_of(reopened)
        assert tab_labels(reopened) == ["Llama notes", "second chat prompt"]
        # The chat used last is in front, with its model and the options its requests were sent with.
        assert chat.active.title == "second chat prompt"
        assert chat.active.model == "llama3.2:3b"
        assert dict(chat.active.options) == options_second
        assert visible_user_turns(reopened) == ["second chat prompt"]
        assert len(chat.transcript().query(AssistantTurn)) == 1
        await pilot.press("ctrl+pageup")
        assert chat.active.system_prompt == "Be brief."
        assert visible_user_turns(reopened) == ["first chat prompt"]
        # The model sees the restored conversation with the next prompt.
        await say(reopened, pilot, "continue")
        sent = conversation_requests(standin)[-1]["messages"]
        assert [message["role"] for message in sent] == ["system", "user", "assistant", "user"]
        assert sent[2]["content"] == DEFAULT_REPLY


async def test_delete_asks_first_and_removes_the_chat_from_the_history(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await say(app, pilot, "keep me")
        await pilot.press("ctrl+n")
        await say(app, pilot, "delete me")
        await pilot.press("ctrl+delete")
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert tab_labels(app) == ["keep me", "delete me"]
        await pilot.press("ctrl+delete")
        await pilot.pause()
        await pilot.press("y")
        await wait_until(lambda: tab_labels(app) == ["keep me"])
        assert visible_user_turns(app) == ["keep me"]
        assert app.history is not None
        await app.history.flush()
    with sqlite3.connect(history_path()) as db:
        titles = [row[0] for row in db.execute("SELECT title FROM chats")]
        prompts = [row[0] for row in db.execute("SELECT content FROM messages WHERE role = 'user'")]
    assert titles == ["keep me"]
    assert prompts == ["keep me"]


async def test_copy_last_reply_puts_the_original_text_on_the_clipboard(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    reply = "Here is **bold** and an escape \x1b]0;title\x07 that the screen shows inert."
    standin.replies.append(Reply(text=reply))
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await pilot.press("ctrl+y")
        assert app.clipboard == ""  # nothing to copy yet
        await say(app, pilot, "hello")
        await pilot.press("ctrl+y")
        assert app.clipboard == reply


async def test_export_writes_markdown_with_front_matter_and_never_overwrites(
    standin: OllamaStandIn, recorded_probe: StaticProbe, tmp_path: Path
) -> None:
    app = build(standin, recorded_probe)
    target = tmp_path / "llamas.md"
    target.write_text("the user's own file\n")
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        model = chat_of(app).active.model
        await say(app, pilot, "Tell me about llamas")
        await pilot.press("f8")
        await answer_dialog(pilot, str(target))
        written = tmp_path / "llamas-2.md"
        await wait_until(written.exists)
    assert target.read_text() == "the user's own file\n"
    text = written.read_text()
    front, body = text.split("\n---\n", 1)
    assert front.startswith("---\n")
    assert f'model: "{model}"' in front
    assert "decode_tokens_per_s:" in front
    assert "Tell me about llamas" in body
    assert "Three facts about llamas" in body


async def test_a_chat_with_a_missing_model_says_so_and_keeps_its_model(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await choose_model(app, pilot, "llama3.2:3b")
        await say(app, pilot, "hello")
        del standin.models["llama3.2:3b"]
        await wait_until(lambda: "not installed" in str(app.query_one("#chat-status").render()), timeout=5)
        assert chat_of(app).active.model == "llama3.2:3b"
        assert isinstance(chat_of(app).transcript().children[-1], AssistantTurn | TurnNote)


async def test_quitting_mid_reply_closes_the_stream_and_keeps_what_arrived(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    standin.default_reply = Reply(token_delay_s=0.05)
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        app.query_one("#prompt", Input).focus()
        await type_text(pilot, "hello")
        await pilot.press("enter")
        await wait_until(lambda: chat_of(app).tokens_flowing and bool(standin.streams))
        await wait_until(lambda: standin.streams[-1].sent_tokens >= 5)
        await pilot.press("ctrl+q")
    record = standin.streams[-1]
    assert record.done.wait(5)
    assert record.closed_by_client and not record.finished
    with sqlite3.connect(history_path()) as db:
        kept = list(db.execute("SELECT role, content, status FROM messages ORDER BY id"))
    assert kept[0] == ("user", "hello", "complete")
    role, partial, status = kept[1]
    assert (role, status) == ("assistant", "interrupted")
    # Every token that arrived, not only the last half-second save.
    assert DEFAULT_REPLY.startswith(partial) and len(partial.split()) >= 5


async def test_each_chat_keeps_what_was_typed_in_it(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        prompt = app.query_one("#prompt", Input)
        await type_text(pilot, "half a thought")
        await pilot.press("ctrl+n")
        assert prompt.value == ""
        await type_text(pilot, "another")
        await pilot.press("ctrl+pageup")
        assert prompt.value == "half a thought"
        await pilot.press("ctrl+pagedown")
        assert prompt.value == "another"


async def test_a_first_prompt_that_got_no_reply_leaves_no_chat_in_the_history(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    standin.replies.append(
        Reply(status=500, status_error="llama runner process has terminated: error loading model")
    )
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        app.query_one("#prompt", Input).focus()
        await type_text(pilot, "my secret")
        await pilot.press("enter")
        await wait_until(lambda: app.query_one("#prompt", Input).value == "my secret")
        assert app.history is not None
        await wait_until(lambda: chat_of(app).active.chat_id is None)
        await app.history.flush()
    with sqlite3.connect(history_path()) as db:
        assert list(db.execute("SELECT title FROM chats")) == []
        assert list(db.execute("SELECT content FROM messages")) == []


async def test_a_full_disk_for_the_history_is_said_and_the_chat_goes_on(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        assert app.history is not None
        history = app.history

        def fill_the_disk() -> None:
            connection = history.history._connection
            assert connection is not None
            # SQLite's own page limit gives the very error a full disk gives ("database or disk is full").
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            connection.execute(f"PRAGMA max_page_count = {pages}")

        await asyncio.wrap_future(history._executor.submit(fill_the_disk))
        chat = chat_of(app)
        prompt = app.query_one("#prompt", Input)
        prompt.value = "x" * 100_000  # a prompt too big for the pages left (pasted, not typed)
        prompt.focus()
        await pilot.press("enter")
        await wait_until(lambda: len(chat.active.turns) == 2 and not chat.streaming)
        await pilot.pause()
        notices = [str(notice.message) for notice in app._notifications]
        assert any("full" in notice for notice in notices)
        # The conversation goes on, on screen and with the model.
        assert chat_of(app).active.turns[-1].content == DEFAULT_REPLY
        assert visible_user_turns(app) == ["x" * 100_000]
        await say(app, pilot, "still here")
        assert conversation_requests(standin)[-1]["messages"][-1] == {"role": "user", "content": "still here"}


async def test_a_long_chat_shows_its_latest_messages_and_says_how_many_more_the_export_has(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    history = History(history_path())
    chat = history.create_chat("long", "llama3.2:3b")
    for index in range(40):
        history.add_message(chat.id, "user" if index % 2 == 0 else "assistant", f"message {index}")
    history.close()
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE):
        await ready(app)
        pane = chat_of(app)
        assert len(pane.active.turns) == 40  # the model still sees the whole conversation
        shown = [str(turn.render()) for turn in pane.transcript().query(UserTurn)]
        assert shown == [f"message {index}" for index in range(10, 40, 2)]
        assert any("10 earlier messages" in note for note in (str(n.render()) for n in pane.query(TurnNote)))


async def test_a_restored_reply_is_drawn_away_from_the_event_loop_and_shown_whole(
    standin: OllamaStandIn, recorded_probe: StaticProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Drawing a long Markdown reply on the event loop froze the first screen (0.25 s for 5,000
    # tokens). Where each block is drawn is recorded around the real renderer.
    part = "## Part {0}\n\nSome *text* for part {0}.\n\n- a\n- b\n\n"
    reply = "".join(part.format(index) for index in range(60))
    history = History(history_path())
    chat = history.create_chat("restored", "llama3.2:3b")
    history.add_message(chat.id, "user", "Tell me everything.")
    history.add_message(chat.id, "assistant", reply)
    history.close()
    drawn_on: list[bool] = []
    render_block = markdown_blocks.render_block

    def recording_render_block(*args: Any, **kwargs: Any) -> Any:
        drawn_on.append(threading.current_thread() is threading.main_thread())
        return render_block(*args, **kwargs)

    monkeypatch.setattr(markdown_blocks, "render_block", recording_render_block)
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        turns = chat_of(app).transcript().query(AssistantTurn)
        assert len(turns) == 1
        turn = turns.first()
        await wait_until(lambda: turn.display)
        await pilot.pause()
        assert drawn_on, "the reply was never drawn"
        assert not any(drawn_on), f"{drawn_on.count(True)} of {len(drawn_on)} blocks drawn on the event loop"
        # Laid out at the width it was drawn at, scrolled to its end, the text as a full render.
        assert turn.content_size.width > 0
        assert [strip.text for strip in turn.lines()] == [
            "".join(segment.text for segment in line)
            for line in markdown_blocks.render_all(reply, turn.content_size.width)
        ]
        drawn_on.clear()  # that reference was drawn here, by the test
        transcript = chat_of(app).transcript()
        assert transcript.max_scroll_y > 0 and transcript.scroll_y == transcript.max_scroll_y
        # Away to a new chat and back: the chat is laid out again, its reply is not drawn again
        # (a scrollbar coming back would have had it drawn twice, without it and with it).
        await pilot.press("ctrl+n")
        await pilot.pause()
        await pilot.press("ctrl+pageup")
        await wait_until(lambda: chat_of(app).transcript() is transcript and turn.region.height > 0)
        await pilot.pause()
        assert not any(drawn_on), "drawn again on the event loop when the chat came back"


async def test_a_restored_chat_shows_the_reply_in_view_first_then_those_above(
    standin: OllamaStandIn, recorded_probe: StaticProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A chat of long replies takes seconds to draw: the last one, in view, comes first.
    monkeypatch.setattr(chat_pane, "RESTORED_BATCH_S", 0.0)
    history = History(history_path())
    chat = history.create_chat("restored", "llama3.2:3b")
    for number in range(3):
        history.add_message(chat.id, "user", f"question {number}")
        history.add_message(
            chat.id, "assistant", f"# Answer {number}\n\n" + "Some *text*.\n\n- a\n- b\n\n" * 80
        )
    history.close()
    # The order the replies are shown in, as the chat shows them (several may be handled between
    # two looks at the screen when the machine is busy, so the screen alone cannot tell).
    shown_order: list[AssistantTurn] = []
    show = chat_pane.ChatPane.on_chat_pane_restored_drawn

    def recorded(pane: chat_pane.ChatPane, message: chat_pane.ChatPane.RestoredDrawn) -> None:
        shown_order.extend(message.replies)
        show(pane, message)

    monkeypatch.setattr(chat_pane.ChatPane, "on_chat_pane_restored_drawn", recorded)
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE):
        await wait_until(
            lambda: app.history_restored and len(chat_of(app).transcript().query(AssistantTurn)) == 3
        )
        turns = list(chat_of(app).transcript().query(AssistantTurn))
        await wait_until(lambda: all(turn.display for turn in turns))
        order = [turns.index(turn) for turn in shown_order]
        assert order[0] == 2, f"shown in the order {order}"
        assert sorted(order) == [0, 1, 2]
