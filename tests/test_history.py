"""The chat history: every chat comes back after a restart, a crash or a kill, and no file is lost."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmdeck.history import (
    MIGRATIONS,
    SCHEMA_VERSION,
    AsyncHistory,
    History,
    HistoryError,
    ReplyWriter,
    StoredChat,
    history_path,
)

OPTIONS = {"num_ctx": 8192, "num_gpu": 99, "stop": ["</s>"], "temperature": 0.7}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "llmdeck" / "history.sqlite3"


@pytest.fixture
def history(path: Path) -> Iterator[History]:
    opened = History(path)
    yield opened
    opened.close()


def reopened(path: Path) -> list[StoredChat]:
    again = History(path)
    try:
        assert again.problem is None
        return again.chats()
    finally:
        again.close()


def moved_aside(path: Path) -> list[Path]:
    """The database files moved aside (their -wal and -shm files, if any, are beside them)."""
    return sorted(
        aside
        for aside in path.parent.glob(f"{path.name}.broken-*")
        if not aside.name.endswith(("-wal", "-shm", "-journal"))
    )


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        version: int = connection.execute("PRAGMA user_version").fetchone()[0]
    connection.close()
    return version


def fill(history: History) -> None:
    """Two chats with a few turns each, as the app would write them."""
    first = history.create_chat("Llama facts", "llama3.1:8b", "Answer briefly.", OPTIONS)
    prompt = history.add_message(first.id, "user", "How many legs has a llama?")
    reply = history.add_message(first.id, "assistant", "", status="streaming")
    history.update_message(reply.id, "Four")
    history.update_message(
        reply.id, "Four **legs**.", status="complete", stats={"decode_tokens_per_s": 41.5, "eval_count": 5}
    )
    assert prompt.status == "complete" and prompt.stats is None
    second = history.create_chat("Poem", None)
    history.add_message(second.id, "user", "Write a poem\n\x1b[31mwith an escape\x1b[0m")


# Where the file lives


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="XDG folders are a Linux/BSD convention")
def test_history_file_is_in_the_xdg_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert history_path() == Path(os.environ["XDG_DATA_HOME"]) / "llmdeck" / "history.sqlite3"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "elsewhere"))
    assert history_path() == tmp_path / "elsewhere" / "llmdeck" / "history.sqlite3"


# Writing and reading back


def test_everything_written_comes_back_after_reopening(history: History, path: Path) -> None:
    fill(history)
    doomed = history.create_chat("Deleted later", "phi3")
    history.add_message(doomed.id, "user", "gone with its chat")
    first, second, _ = history.chats()
    history.rename_chat(second.id, "A poem about llamas")
    history.set_system_prompt(second.id, "You are a poet.\nRhyme.")
    history.set_model(second.id, "gemma2:9b", {"num_ctx": 4096})
    history.delete_chat(doomed.id)

    chats = history.chats()
    assert [chat.title for chat in chats] == ["Llama facts", "A poem about llamas"]
    first, second = chats
    assert (first.model, first.system_prompt, first.options) == ("llama3.1:8b", "Answer briefly.", OPTIONS)
    assert [(m.role, m.content, m.status, m.stats) for m in first.messages] == [
        ("user", "How many legs has a llama?", "complete", None),
        ("assistant", "Four **legs**.", "complete", {"decode_tokens_per_s": 41.5, "eval_count": 5}),
    ]
    assert (second.model, second.system_prompt, second.options) == (
        "gemma2:9b",
        "You are a poet.\nRhyme.",
        {"num_ctx": 4096},
    )
    assert [m.content for m in second.messages] == ["Write a poem\n\x1b[31mwith an escape\x1b[0m"]
    history.close()

    assert reopened(path) == chats


def test_deleting_a_chat_deletes_its_messages(history: History, path: Path) -> None:
    fill(history)
    first = history.chats()[0]
    history.delete_chat(first.id)
    history.delete_chat(first.id)  # already gone: nothing to do
    history.close()
    with sqlite3.connect(path) as connection:
        orphans = connection.execute(
            "SELECT count(*) FROM messages WHERE chat_id = ?", (first.id,)
        ).fetchone()
    connection.close()
    assert orphans == (0,)


def test_a_deleted_chat_leaves_no_text_in_the_file(history: History, path: Path) -> None:
    secret = "my bank PIN is 4711, a secret"
    kept = history.create_chat("kept", "m")
    history.add_message(kept.id, "user", "keep this")
    gone = history.create_chat("gone", "m")
    for _ in range(20):
        history.add_message(gone.id, "user", secret * 20)
    # Copy the log into the file, as SQLite does from time to time, so the text is in the file.
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    other.close()
    assert secret.encode() in path.read_bytes()
    history.delete_chat(gone.id)
    history.close()  # folds the write-ahead log into the file
    data = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert b"keep this" in data
    assert secret.encode() not in data


def test_a_withdrawn_prompt_is_deleted(history: History) -> None:
    chat = history.create_chat("c", "m")
    kept = history.add_message(chat.id, "user", "first")
    withdrawn = history.add_message(chat.id, "user", "no reply came")
    history.delete_message(withdrawn.id)
    history.delete_message(withdrawn.id)  # already gone: nothing to do
    assert history.chats()[0].messages == (kept,)


def test_what_the_methods_return_is_what_is_stored(history: History) -> None:
    chat = history.create_chat("c", "m", "system", {"num_ctx": 2048})
    message = history.add_message(chat.id, "user", "hello")
    stored = history.chats()[0]
    assert stored.messages == (message,)
    assert stored.options == chat.options and stored.created_at == chat.created_at


def test_chats_come_oldest_first_and_messages_in_order(history: History, path: Path) -> None:
    late = history.create_chat("late", "m")
    early = history.create_chat("early", "m")
    for number in range(30):
        history.add_message(late.id if number % 2 else early.id, "user", f"message {number}")
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE chats SET created_at = 0 WHERE id = ?", (early.id,))
    connection.close()
    chats = history.chats()
    assert [chat.title for chat in chats] == ["early", "late"]
    assert [m.content for m in chats[0].messages] == [f"message {n}" for n in range(0, 30, 2)]
    assert [m.content for m in chats[1].messages] == [f"message {n}" for n in range(1, 30, 2)]


def test_every_write_marks_the_chat_updated(history: History, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = itertools.count(1000)
    monkeypatch.setattr(time, "time", lambda: float(next(clock)))
    chat = history.create_chat("c", "m")
    assert chat.created_at == chat.updated_at == 1000

    def updated_at() -> float:
        return next(c for c in history.chats() if c.id == chat.id).updated_at

    seen = [updated_at()]
    message = history.add_message(chat.id, "user", "hi")
    seen.append(updated_at())
    writes: list[Callable[[], None]] = [
        lambda: history.update_message(message.id, "hello"),
        lambda: history.rename_chat(chat.id, "renamed"),
        lambda: history.set_system_prompt(chat.id, "be brief"),
        lambda: history.set_model(chat.id, "other", {}),
        lambda: history.delete_message(message.id),
    ]
    for write in writes:
        write()
        seen.append(updated_at())
    assert seen == sorted(set(seen)), "each write must move updated_at forward"
    assert history.chats()[0].created_at == 1000


def test_a_message_for_a_deleted_chat_is_refused(history: History) -> None:
    chat = history.create_chat("c", "m")
    history.delete_chat(chat.id)
    with pytest.raises(HistoryError, match=f"chat {chat.id} is not in"):
        history.add_message(chat.id, "user", "x")
    assert history.chats() == []


async def test_a_chat_deleted_while_its_reply_streams_is_no_failure(path: Path) -> None:
    # Closing a tab (or another window) may delete a chat whose reply is still being written:
    # the late writes have nothing left to change, and must not fail the user's next action.
    store = AsyncHistory(History(path))
    try:
        doomed = await store.create_chat("doomed", "m")
        reply = await store.add_message(doomed.id, "assistant", "", status="streaming")
        await store.delete_chat(doomed.id)
        store.update_message_soon(reply.id, "late partial text")
        await store.update_message(reply.id, "late final text", status="complete", stats={"eval_count": 3})
        await store.rename_chat(doomed.id, "late rename")
        await store.set_system_prompt(doomed.id, "late prompt")
        await store.set_model(doomed.id, "late", {})
        other = await store.create_chat("next chat", "m")
        await store.add_message(other.id, "user", "saved as usual")
        assert [chat.title for chat in await store.chats()] == ["next chat"]
    finally:
        await store.aclose()


# How the file is kept


def test_file_and_folders_are_private(history: History, path: Path) -> None:
    fill(history)
    for created in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        assert stat.S_IMODE(created.stat().st_mode) == 0o600, created
    # Every folder llmdeck had to create, not only the last one.
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


def test_writes_are_durable_per_commit(history: History, path: Path) -> None:
    fill(history)
    connection = history._connection  # the settings that matter are those of the writing connection
    assert connection is not None
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert connection.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert connection.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert connection.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert not connection.in_transaction
    # WAL is a property of the file: another program opening it sees it too.
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    other.close()


def test_each_call_is_visible_to_another_window_at_once(history: History, path: Path) -> None:
    window_b = History(path)
    try:
        chat = history.create_chat("from a", "m")
        history.add_message(chat.id, "user", "hello from a")
        assert [m.content for m in window_b.chats()[0].messages] == ["hello from a"]
        window_b.rename_chat(chat.id, "renamed by b")
        assert history.chats()[0].title == "renamed by b"
    finally:
        window_b.close()


def test_reply_streaming_when_the_app_died_is_marked_interrupted(history: History, path: Path) -> None:
    chat = history.create_chat("c", "m")
    history.add_message(chat.id, "user", "question")
    streaming = history.add_message(chat.id, "assistant", "half an ans", status="streaming")
    stopped = history.add_message(chat.id, "assistant", "stopped", status="stopped")
    failed = history.add_message(chat.id, "assistant", "", status="error")
    history.update_message(failed.id, "", note="model not found")
    history.close()

    messages = {m.id: m for m in reopened(path)[0].messages}
    assert (messages[streaming.id].status, messages[streaming.id].content) == ("interrupted", "half an ans")
    assert messages[stopped.id].status == "stopped"
    assert (messages[failed.id].status, messages[failed.id].note) == ("error", "model not found")


def test_opening_a_second_window_does_not_interrupt_a_reply_streaming_in_the_first(
    history: History, path: Path
) -> None:
    chat = history.create_chat("c", "m")
    reply = history.add_message(chat.id, "assistant", "still comi", status="streaming")
    second_window = History(path)
    try:
        assert second_window.chats()[0].messages[0].status == "streaming"
        history.update_message(reply.id, "still coming", status="complete")
        assert second_window.chats()[0].messages[0].status == "complete"
        # A reply left streaming by a window that crashed is marked once no window has the file.
        history.add_message(chat.id, "assistant", "cut short", status="streaming")
    finally:
        second_window.close()
    history.close()
    assert [m.status for m in reopened(path)[0].messages] == ["complete", "interrupted"]


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from llmdeck.history import History

    history = History(Path(sys.argv[1]))
    chat = history.create_chat("Killed mid-reply", "llama3.1:8b")
    history.add_message(chat.id, "user", "Tell me a long story")
    reply = history.add_message(chat.id, "assistant", "", status="streaming")
    history.update_message(reply.id, "Once upon a time, a llama")
    print("ready", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_hard_kill_mid_reply_loses_nothing_written(path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    try:
        assert writer.stdout.readline() == "ready\n"
        # Never closed: what was written is still in the write-ahead log, not the database file.
        assert path.with_name(path.name + "-wal").stat().st_size > 0
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL

    [chat] = reopened(path)
    assert chat.title == "Killed mid-reply"
    assert [(m.role, m.content, m.status) for m in chat.messages] == [
        ("user", "Tell me a long story", "complete"),
        ("assistant", "Once upon a time, a llama", "interrupted"),
    ]


# Older, newer and damaged files


def write_version_1_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        connection.execute(statement)
    connection.execute(
        "INSERT INTO chats (id, title, model, created_at) VALUES (1, 'Old chat', 'phi3', 100.5)"
    )
    connection.execute("INSERT INTO chats (id, title, model, created_at) VALUES (2, 'No model', NULL, 200.0)")
    connection.executemany(
        "INSERT INTO messages (chat_id, role, content, created_at) VALUES (?, ?, ?, ?)",
        [(1, "user", "hi", 101.0), (1, "assistant", "hello!", 102.0)],
    )
    connection.execute("PRAGMA user_version = 1")
    connection.commit()
    connection.close()


def test_a_version_1_file_is_migrated_with_its_data(path: Path) -> None:
    write_version_1_file(path)
    history = History(path)
    try:
        assert history.problem is None
        old, no_model = history.chats()
        assert (old.id, old.title, old.model, old.created_at) == (1, "Old chat", "phi3", 100.5)
        # The new columns have their defaults; the chat counts as last changed when it was created.
        assert (old.system_prompt, old.options, old.updated_at) == ("", {}, 100.5)
        assert [(m.role, m.content, m.status, m.stats, m.note, m.retried) for m in old.messages] == [
            ("user", "hi", "complete", None, "", False),
            ("assistant", "hello!", "complete", None, "", False),
        ]
        assert (no_model.model, no_model.messages) == (None, ())
        # The migrated file takes everything a new one does.
        history.set_model(old.id, "phi3", {"num_ctx": 2048})
        reply = history.add_message(old.id, "assistant", "more", status="stopped")
        history.update_message(reply.id, "more!", stats={"eval_count": 2}, note="stopped by the user")
        history.mark_retried([old.messages[0].id])
    finally:
        history.close()
    assert user_version(path) == SCHEMA_VERSION == 3
    old = reopened(path)[0]
    assert old.options == {"num_ctx": 2048}
    assert (old.messages[-1].content, old.messages[-1].stats) == ("more!", {"eval_count": 2})
    assert [m.retried for m in old.messages] == [True, False, False]


def test_a_migration_that_fails_leaves_the_file_as_it_was(path: Path) -> None:
    write_version_1_file(path)
    with sqlite3.connect(path) as connection:
        # A column the last statement of step 2 adds: the step fails after its first statements ran.
        connection.execute("ALTER TABLE messages ADD COLUMN note TEXT")
    connection.close()

    with pytest.raises(HistoryError, match="duplicate column"):
        History(path)
    assert user_version(path) == 1
    with sqlite3.connect(path) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(chats)")]
        rows = connection.execute("SELECT title FROM chats ORDER BY id").fetchall()
    connection.close()
    assert columns == ["id", "title", "model", "created_at"]
    assert rows == [("Old chat",), ("No model",)]
    assert moved_aside(path) == []


def test_an_empty_file_becomes_a_history(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    history = History(path)
    try:
        assert history.problem is None and history.chats() == []
        history.create_chat("first", "m")
    finally:
        history.close()
    assert user_version(path) == SCHEMA_VERSION
    assert moved_aside(path) == []


def test_a_file_from_a_newer_llmdeck_is_left_alone(path: Path) -> None:
    history = History(path)
    fill(history)
    history.close()
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    before = path.read_bytes()

    with pytest.raises(HistoryError, match="newer llmdeck") as raised:
        History(path)
    assert str(path) in str(raised.value)
    assert path.read_bytes() == before
    assert moved_aside(path) == []
    assert user_version(path) == SCHEMA_VERSION + 1


def test_a_file_that_is_not_a_database_is_moved_aside(path: Path) -> None:
    path.parent.mkdir(parents=True)
    garbage = b"these are my notes, not a database\n" * 100
    path.write_bytes(garbage)

    history = History(path)
    try:
        [aside] = moved_aside(path)
        assert aside.read_bytes() == garbage
        assert history.problem is not None
        assert str(aside) in history.problem and str(path) in history.problem
        # The fresh history works and is as private as any new one.
        chat = history.create_chat("after", "m")
        history.add_message(chat.id, "user", "still works")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        history.close()
    assert [m.content for m in reopened(path)[0].messages] == ["still works"]
    assert moved_aside(path) == [aside]


def test_a_damaged_database_is_moved_aside_with_its_bytes(path: Path) -> None:
    history = History(path)
    fill(history)
    chat = history.chats()[0]
    for number in range(200):
        history.add_message(chat.id, "user", f"message {number} " * 50)
    history.close()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    # Keep the header page (so SQLite recognises the file) and scribble over the pages after it.
    data[page : len(data) - page] = bytes((n * 7 + 3) % 256 for n in range(len(data) - 2 * page))
    path.write_bytes(bytes(data))

    history = History(path)
    try:
        [aside] = moved_aside(path)
        assert aside.read_bytes() == bytes(data)
        assert history.problem is not None and str(aside) in history.problem
        assert history.chats() == []
    finally:
        history.close()


def test_damage_found_only_by_the_integrity_check_is_caught_at_open(path: Path) -> None:
    history = History(path)
    fill(history)
    history.close()
    with sqlite3.connect(path) as connection:
        [root] = connection.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'messages_by_chat'"
        ).fetchone()
        page = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()
    # Only the index is hit: opening and reading the tables would work, and the damage would show
    # later, in the middle of a chat, as an error on some unrelated write.
    data = bytearray(path.read_bytes())
    data[(root - 1) * page : root * page] = b"\xa5" * page
    path.write_bytes(bytes(data))

    history = History(path)
    try:
        [aside] = moved_aside(path)
        assert aside.read_bytes() == bytes(data)
        assert history.problem is not None and str(aside) in history.problem
    finally:
        history.close()


def test_the_journal_files_are_moved_aside_with_the_damaged_file(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database" * 100)
    wal = path.with_name(path.name + "-wal")
    wal.write_bytes(b"whatever was in the write-ahead log")

    History(path).close()
    [aside] = moved_aside(path)
    assert aside.with_name(aside.name + "-wal").read_bytes() == b"whatever was in the write-ahead log"
    # An old log beside the new file could be replayed into it.
    assert not wal.exists() or wal.stat().st_size == 0
    assert reopened(path) == []


@pytest.mark.skipif(sys.platform == "win32", reason="file locks tell windows apart on POSIX only")
def test_a_damaged_file_another_window_uses_is_not_moved(path: Path) -> None:
    import fcntl

    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database" * 100)
    # What an open llmdeck window holds on the history.
    lock = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_SH)
        with pytest.raises(HistoryError, match="another llmdeck window"):
            History(path)
        assert moved_aside(path) == []
        assert path.read_bytes() == b"not a database" * 100
    finally:
        os.close(lock)
    History(path).close()
    assert len(moved_aside(path)) == 1


def test_a_second_damaged_file_in_the_same_second_gets_its_own_name(path: Path) -> None:
    path.parent.mkdir(parents=True)
    for text in (b"first broken file" * 10, b"second broken file" * 10):
        path.write_bytes(text)
        History(path).close()
    kept = {aside.read_bytes() for aside in moved_aside(path)}
    assert kept == {b"first broken file" * 10, b"second broken file" * 10}


def test_garbled_json_columns_do_not_stop_the_chat_loading(history: History, path: Path) -> None:
    chat = history.create_chat("c", "m", options={"num_ctx": 1})
    reply = history.add_message(chat.id, "assistant", "text")
    other = history.add_message(chat.id, "assistant", "text 2")
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE chats SET options = '{not json'")
        connection.execute("UPDATE messages SET stats = '[1, 2]' WHERE id = ?", (reply.id,))
        connection.execute("UPDATE messages SET stats = 'nope' WHERE id = ?", (other.id,))
    connection.close()
    [loaded] = history.chats()
    assert loaded.options == {}
    assert [m.stats for m in loaded.messages] == [None, None]
    assert [m.content for m in loaded.messages] == ["text", "text 2"]


# Failures are HistoryError with a sentence for the user


def test_a_full_disk_is_a_history_error_and_writes_nothing(history: History) -> None:
    chat = history.create_chat("c", "m")
    before = history.chats()
    connection = history._connection
    assert connection is not None
    # SQLite's own limit gives the very error a full disk gives.
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages}")

    with pytest.raises(HistoryError, match="full") as raised:
        history.add_message(chat.id, "user", "x" * 100_000)
    assert not isinstance(raised.value, sqlite3.Error)
    assert str(history.path) in str(raised.value)
    # The chat's updated_at was bumped in the same transaction: it was rolled back too.
    assert history.chats() == before

    connection.execute("PRAGMA max_page_count = 1073741823")
    history.add_message(chat.id, "user", "room again")
    assert [m.content for m in history.chats()[0].messages] == ["room again"]


def test_a_read_only_file_is_a_history_error(history: History) -> None:
    chat = history.create_chat("c", "m")
    connection = history._connection
    assert connection is not None
    # Tests run as root, where file modes do not stop writes; this makes SQLite refuse them.
    connection.execute("PRAGMA query_only = ON")
    with pytest.raises(HistoryError, match=r"readonly|read-only"):
        history.rename_chat(chat.id, "new name")
    assert history.chats()[0].title == "c"


def test_a_folder_that_cannot_be_created_is_a_history_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("in the way")
    target = tmp_path / "a-file" / "llmdeck" / "history.sqlite3"
    with pytest.raises(HistoryError, match="cannot create the folder") as raised:
        History(target)
    assert str(target) in str(raised.value)


def test_a_closed_history_says_so(history: History) -> None:
    history.close()
    history.close()  # twice is fine
    with pytest.raises(HistoryError, match="closed"):
        history.chats()
    with pytest.raises(HistoryError, match="closed"):
        history.create_chat("c", "m")


def test_options_that_are_not_json_are_a_history_error(history: History) -> None:
    with pytest.raises(HistoryError, match="options"):
        history.create_chat("c", "m", options={"when": object()})
    assert history.chats() == []


# ReplyWriter


def test_reply_writer_allows_one_write_per_interval() -> None:
    now = [100.0]
    writer = ReplyWriter(0.5, clock=lambda: now[0])
    decisions = []
    # A token every 62.5 ms (exact in binary, so the sums are too) for 2.5 s.
    for _ in range(40):
        decisions.append(writer.due())
        now[0] += 0.0625
    assert [i for i, due in enumerate(decisions) if due] == [0, 8, 16, 24, 32]


def test_reply_writer_writes_at_once_after_a_pause() -> None:
    now = [0.0]
    writer = ReplyWriter(clock=lambda: now[0])
    assert writer.due() and not writer.due()
    now[0] = 0.49
    assert not writer.due()
    now[0] = 5.0  # a slow model: the next token comes long after
    assert writer.due() and not writer.due()


# AsyncHistory


async def test_async_calls_run_in_order_off_the_event_loop(path: Path) -> None:
    store = AsyncHistory(History(path))
    threads: set[threading.Thread] = set()
    original = store.history.update_message

    def recording_update(*args: object, **kwargs: object) -> None:
        threads.add(threading.current_thread())
        original(*args, **kwargs)  # type: ignore[arg-type]

    store.history.update_message = recording_update  # type: ignore[method-assign]
    try:
        chat = await store.create_chat("async", "m", options={"num_ctx": 1})
        await store.add_message(chat.id, "user", "question")
        reply = await store.add_message(chat.id, "assistant", "", status="streaming")
        text = ""
        for word in ["Once", " upon", " a", " time"]:
            text += word
            store.update_message_soon(reply.id, text)
        # Submitted after the partial writes, so it sees all of them.
        [seen] = await store.chats()
        assert seen.messages[-1].content == "Once upon a time"
        store.update_message_soon(reply.id, "overtaken")
        await store.update_message(reply.id, "The end.", status="complete", stats={"eval_count": 4})
        store.update_message_soon(reply.id, "The end.", note="last")
        await store.flush()
        [final] = await store.chats()
        assert (final.messages[-1].content, final.messages[-1].status) == ("The end.", "complete")
        assert (final.messages[-1].stats, final.messages[-1].note) == ({"eval_count": 4}, "last")
    finally:
        await store.aclose()
    assert len(threads) == 1 and threading.main_thread() not in threads


async def test_the_event_loop_keeps_running_while_the_history_writes(path: Path) -> None:
    store = AsyncHistory(History(path))
    release = threading.Event()

    def blocked_chats() -> list[StoredChat]:
        release.wait(5)
        return []

    store.history.chats = blocked_chats  # type: ignore[method-assign]
    try:
        pending = asyncio.ensure_future(store.chats())
        await asyncio.sleep(0.05)
        # The loop ran the sleep while the worker was blocked.
        assert not pending.done()
        release.set()
        assert await pending == []
    finally:
        release.set()
        await store.aclose()


async def make_read_only(store: AsyncHistory, read_only: bool) -> None:
    """Make SQLite refuse writes (tests run as root, where file modes do not), on the worker."""
    connection = store.history._connection
    assert connection is not None
    pragma = f"PRAGMA query_only = {'ON' if read_only else 'OFF'}"
    await asyncio.wrap_future(store._executor.submit(connection.execute, pragma))


async def test_a_failed_background_write_does_not_stop_the_final_one_and_flush_reports_it(path: Path) -> None:
    store = AsyncHistory(History(path))
    try:
        chat = await store.create_chat("c", "m")
        reply = await store.add_message(chat.id, "assistant", "", status="streaming")
        await make_read_only(store, True)
        store.update_message_soon(reply.id, "partial")  # fails: the disk refused it
        await make_read_only(store, False)
        # The final text of the reply is still written...
        await store.update_message(reply.id, "the whole reply", status="complete")
        [seen] = await store.chats()
        assert [(m.content, m.status) for m in seen.messages] == [("the whole reply", "complete")]
        # ...and the earlier failure is reported, once, naming the file.
        with pytest.raises(HistoryError, match="readonly") as raised:
            await store.flush()
        assert str(path) in str(raised.value)
        await store.flush()
    finally:
        await store.aclose()


async def test_a_history_closed_underneath_fails_with_history_error(path: Path) -> None:
    store = AsyncHistory(History(path))
    chat = await store.create_chat("c", "m")
    await asyncio.wrap_future(store._executor.submit(store.history.close))
    store.update_message_soon(1, "lost")
    with pytest.raises(HistoryError, match="closed"):
        await store.flush()
    with pytest.raises(HistoryError, match="closed"):
        await store.rename_chat(chat.id, "x")
    await store.aclose()


async def test_aclose_writes_what_is_pending_then_refuses_more(path: Path) -> None:
    store = AsyncHistory(History(path))
    chat = await store.create_chat("c", "m")
    message = await store.add_message(chat.id, "assistant", "", status="streaming")
    for length in range(1, 200):
        store.update_message_soon(message.id, "x" * length)
    await store.aclose()
    await store.aclose()  # twice is fine
    with pytest.raises(HistoryError, match="closed"):
        await store.chats()
    with pytest.raises(HistoryError, match="closed"):
        store.update_message_soon(message.id, "late")
    # Every partial write landed; the reply never finished, so reopening marks it interrupted.
    [chat_again] = reopened(path)
    assert (chat_again.messages[0].content, chat_again.messages[0].status) == ("x" * 199, "interrupted")


async def test_aclose_reports_a_kept_failure_and_still_closes(path: Path) -> None:
    store = AsyncHistory(History(path))
    chat = await store.create_chat("c", "m")
    reply = await store.add_message(chat.id, "assistant", "", status="streaming")
    await make_read_only(store, True)
    store.update_message_soon(reply.id, "partial")
    with pytest.raises(HistoryError, match="readonly"):
        await store.aclose()
    with pytest.raises(HistoryError, match="closed"):
        store.history.chats()


def test_close_from_synchronous_code_waits_for_pending_writes(path: Path) -> None:
    async def start() -> tuple[AsyncHistory, int]:
        store = AsyncHistory(History(path))
        chat = await store.create_chat("c", "m")
        message = await store.add_message(chat.id, "assistant", "", status="streaming")
        for length in range(1, 100):
            store.update_message_soon(message.id, "y" * length)
        return store, message.id

    store, _ = asyncio.run(start())
    store.close()
    store.close()
    with pytest.raises(HistoryError, match="closed"):
        store.history.chats()
    assert reopened(path)[0].messages[0].content == "y" * 99
