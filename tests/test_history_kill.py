"""The history survives llmdeck being killed mid-reply: the prompt and the partial reply are kept."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

from helpers import fast_settings, wait_until
from ollama_standin import DEFAULT_REPLY, OllamaStandIn, Reply

from llmdeck.hardware import StaticProbe
from llmdeck.history import history_path
from llmdeck.ollama_api import OllamaService
from llmdeck.ui.app import create_app
from llmdeck.ui.chat_pane import AssistantTurn, ChatPane, TurnNote, UserTurn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from terminal import MARKER, Terminal


def rows(path: Path, *, after_crash: bool = False) -> list[tuple[str, str, str]]:
    """What llmdeck committed. While it runs, read-only, as another process would look. After it
    was killed, as the next llmdeck opens it (read-write): a kill in the middle of a commit can
    leave the commit in the write-ahead log but not yet in its shared index, which a read-only
    reader trusts and the next writer rebuilds from the log (seen: the partial reply read here was
    one write shorter than the one restored)."""
    uri = f"file:{path}" if after_crash else f"file:{path}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        return list(db.execute("SELECT role, content, status FROM messages ORDER BY id"))


def partial_reply_written(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        return any(role == "assistant" and content for role, content, _ in rows(path))
    except sqlite3.Error:
        return False  # the file is being created


def kill_mid_reply(url: str, database: Path) -> None:
    """Run llmdeck in a terminal, send a prompt, and SIGKILL it while the reply streams."""
    command = [sys.executable, "-m", "llmdeck", "--host", url]
    with Terminal(command) as terminal:
        terminal.wait_for(MARKER, timeout_s=30)
        time.sleep(0.5)  # the history is open and the chat has its model
        terminal.type(b"Tell me about llamas\r")
        deadline = time.monotonic() + 20
        while not partial_reply_written(database):
            assert time.monotonic() < deadline, "no partial reply reached the history"
            time.sleep(0.05)
        time.sleep(0.6)  # let a later partial write land too
        os.kill(terminal.process.pid, signal.SIGKILL)
        terminal.process.wait(timeout=5)


async def test_killing_llmdeck_mid_reply_keeps_the_prompt_and_the_partial_reply(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    # About 100 tokens at 20 a second: five seconds of reply, of which llmdeck sees some.
    standin.default_reply = Reply(token_delay_s=0.05)
    database = history_path()
    await asyncio.to_thread(kill_mid_reply, standin.url, database)

    kept = rows(database, after_crash=True)
    assert kept[0] == ("user", "Tell me about llamas", "complete")
    role, partial, state = kept[1]
    assert (role, state) == ("assistant", "streaming")
    # What had arrived, as it arrived: a real beginning of the reply, not all of it.
    assert partial and DEFAULT_REPLY.startswith(partial) and len(partial) < len(DEFAULT_REPLY)

    # Reopening shows both, the reply marked as interrupted, and the model sees them next time.
    app = create_app(OllamaService(standin.url), recorded_probe, fast_settings(standin.url))
    async with app.run_test(size=(120, 40)):
        chat = app.query_one(ChatPane)
        await wait_until(lambda: bool(chat.query(AssistantTurn)))
        assert [str(turn.render()) for turn in chat.query(UserTurn)] == ["Tell me about llamas"]
        assert any("interrupted" in str(note.render()) for note in chat.query(TurnNote))
        assert [turn.content for turn in chat.active.turns] == ["Tell me about llamas", partial]
    assert rows(database)[1][2] == "interrupted"


def quit_mid_reply(url: str) -> tuple[int | None, bytes]:
    """Run llmdeck in a terminal, send a prompt, press ctrl+q while the reply streams."""
    command = [sys.executable, "-m", "llmdeck", "--host", url]
    with Terminal(command) as terminal:
        terminal.wait_for(MARKER, timeout_s=30)
        time.sleep(0.5)
        terminal.type(b"Tell me about llamas\r")
        terminal.wait_for(b"streaming", timeout_s=20)
        terminal.type(b"\x11")  # ctrl+q
        code = terminal.process.wait(timeout=10)
        time.sleep(0.2)  # the last bytes reach the reader
        return code, bytes(terminal.output)


async def test_ctrl_q_mid_reply_restores_the_terminal_and_closes_the_stream(standin: OllamaStandIn) -> None:
    standin.default_reply = Reply(token_delay_s=0.05)
    code, output = await asyncio.to_thread(quit_mid_reply, standin.url)
    assert code == 0
    tail = output[-2000:]
    # Textual leaves the alternate screen and shows the cursor again: the shell is as it was.
    assert b"\x1b[?1049l" in tail and b"\x1b[?25h" in tail
    record = standin.streams[-1]
    assert record.done.wait(5) and record.closed_by_client
    with sqlite3.connect(history_path()) as db:
        [(partial, status)] = list(
            db.execute("SELECT content, status FROM messages WHERE role = 'assistant'")
        )
    # Whether the wrap-up ran ("stopped", by the user's quit) or closing cut it short ("interrupted").
    assert status in ("stopped", "interrupted")
    assert partial and DEFAULT_REPLY.startswith(partial)
