"""Every chat llmdeck has held, in one SQLite file in the user's data directory.

Each message is written as it happens, and a streaming reply's partial text every half second, so
a crash, a kill or a power cut loses at most the last half second of a reply. The file is the
user's record: one llmdeck cannot read is moved aside and a new one started, never deleted, and
one from a newer llmdeck is left exactly as it is.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import platformdirs

from llmdeck.private_files import make_private_folders

if sys.platform != "win32":
    import fcntl

APP_NAME = "llmdeck"
HISTORY_FILE = "history.sqlite3"

MessageStatus = Literal["complete", "streaming", "stopped", "interrupted", "error"]
_STATUSES: frozenset[str] = frozenset(get_args(MessageStatus))

# Version 1 was the first schema; a file at version N has had the first N steps applied, each in
# its own transaction. Steps are never edited once released, only appended: a user's file may be
# at any earlier version.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE chats (id INTEGER PRIMARY KEY, title TEXT NOT NULL, model TEXT,"
        " created_at REAL NOT NULL)",
        "CREATE TABLE messages (id INTEGER PRIMARY KEY,"
        " chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,"
        " role TEXT NOT NULL, content TEXT NOT NULL, created_at REAL NOT NULL)",
        "CREATE INDEX messages_by_chat ON messages(chat_id, id)",
    ),
    (
        "ALTER TABLE chats ADD COLUMN system_prompt TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE chats ADD COLUMN options TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE chats ADD COLUMN updated_at REAL",
        "UPDATE chats SET updated_at = created_at",
        "ALTER TABLE messages ADD COLUMN status TEXT NOT NULL DEFAULT 'complete'",
        "ALTER TABLE messages ADD COLUMN stats TEXT",
        "ALTER TABLE messages ADD COLUMN note TEXT NOT NULL DEFAULT ''",
    ),
    ("ALTER TABLE messages ADD COLUMN retried INTEGER NOT NULL DEFAULT 0",),
)
SCHEMA_VERSION: int = len(MIGRATIONS)

# Another llmdeck window may hold the write lock for the few milliseconds of its own commit.
BUSY_TIMEOUT_MS = 5000
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})

T = TypeVar("T")


class HistoryError(Exception):
    """The chat history could not be read or written; the message names the file and the reason."""


class _Damaged(Exception):
    """The file is not a usable SQLite database; the message says why (without the path)."""


def history_path() -> Path:
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / HISTORY_FILE


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    chat_id: int
    role: str
    content: str
    status: MessageStatus
    created_at: float
    # A reply's figures (tokens/s, counts, durations); None for prompts and unfinished replies.
    stats: dict[str, Any] | None
    # Why a reply ended as it did (the error text for "error"); "" when there is nothing to say.
    note: str
    # Its prompt was sent again (ctrl+t after a failure): kept and shown, no longer sent to the model.
    retried: bool = False


@dataclass(frozen=True, slots=True)
class StoredChat:
    id: int
    title: str
    model: str | None
    system_prompt: str
    options: dict[str, Any]
    created_at: float
    updated_at: float
    messages: tuple[StoredMessage, ...]


class History:
    """One SQLite file; every method commits before returning.

    Not thread-safe by itself: use it from one thread at a time (AsyncHistory does that).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._problem: str | None = None
        self._connection: sqlite3.Connection | None = None
        self._lock: int | None = None
        self._connection = self._open()

    @property
    def path(self) -> Path:
        return self._path

    @property
    def problem(self) -> str | None:
        """What happened to a file that could not be used (it was moved aside), for the user."""
        return self._problem

    # Reading

    def chats(self) -> list[StoredChat]:
        """Every chat, oldest first, each with its messages in the order they were written."""
        with self._transaction("read", write=False) as connection:
            chat_rows = connection.execute(
                "SELECT id, title, model, system_prompt, options, created_at, updated_at"
                " FROM chats ORDER BY created_at, id"
            ).fetchall()
            message_rows = connection.execute(
                "SELECT id, chat_id, role, content, status, created_at, stats, note, retried"
                " FROM messages ORDER BY chat_id, id"
            ).fetchall()
        messages: dict[int, list[StoredMessage]] = {}
        for row in message_rows:
            message = _message(row)
            messages.setdefault(message.chat_id, []).append(message)
        return [
            StoredChat(
                id=chat_id,
                title=title,
                model=model,
                system_prompt=system_prompt,
                options=_load_object(options) or {},
                created_at=created_at,
                updated_at=created_at if updated_at is None else updated_at,
                messages=tuple(messages.get(chat_id, ())),
            )
            for chat_id, title, model, system_prompt, options, created_at, updated_at in chat_rows
        ]

    # Chats

    def create_chat(
        self,
        title: str,
        model: str | None,
        system_prompt: str = "",
        options: Mapping[str, Any] | None = None,
    ) -> StoredChat:
        chosen = dict(options or {})
        encoded = _dump_object(chosen, "options")
        now = time.time()
        with self._transaction("save a new chat") as connection:
            cursor = connection.execute(
                "INSERT INTO chats (title, model, system_prompt, options, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (title, model, system_prompt, encoded, now, now),
            )
            chat_id = _row_id(cursor)
        return StoredChat(chat_id, title, model, system_prompt, chosen, now, now, ())

    # Changing a chat or message that was deleted meanwhile does nothing: there is nothing to keep.

    def rename_chat(self, chat_id: int, title: str) -> None:
        with self._transaction("rename a chat") as connection:
            self._change_chat(connection, chat_id, "title = ?", (title,))

    def set_system_prompt(self, chat_id: int, text: str) -> None:
        with self._transaction("save a system prompt") as connection:
            self._change_chat(connection, chat_id, "system_prompt = ?", (text,))

    def set_model(self, chat_id: int, model: str | None, options: Mapping[str, Any]) -> None:
        encoded = _dump_object(dict(options), "options")
        with self._transaction("save a chat's model") as connection:
            self._change_chat(connection, chat_id, "model = ?, options = ?", (model, encoded))

    def delete_chat(self, chat_id: int) -> None:
        """Remove the chat and its messages; a chat already gone is not an error."""
        with self._transaction("delete a chat") as connection:
            connection.execute("DELETE FROM chats WHERE id = ?", (chat_id,))

    def delete_chat_if_empty(self, chat_id: int) -> bool:
        """Remove the chat only if it holds no message; True when it was removed (or was gone)."""
        with self._transaction("delete a chat") as connection:
            connection.execute(
                "DELETE FROM chats WHERE id = ? AND NOT EXISTS (SELECT 1 FROM messages WHERE chat_id = ?)",
                (chat_id, chat_id),
            )
            row = connection.execute("SELECT 1 FROM chats WHERE id = ?", (chat_id,)).fetchone()
        return row is None

    # Messages

    def add_message(
        self, chat_id: int, role: str, content: str, status: MessageStatus = "complete"
    ) -> StoredMessage:
        _check_status(status)
        now = time.time()
        with self._transaction("save a message") as connection:
            self._change_chat(connection, chat_id, now=now, must_exist=True)
            cursor = connection.execute(
                "INSERT INTO messages (chat_id, role, content, status, created_at) VALUES (?, ?, ?, ?, ?)",
                (chat_id, role, content, status, now),
            )
            message_id = _row_id(cursor)
        return StoredMessage(message_id, chat_id, role, content, status, now, None, "")

    def update_message(
        self,
        message_id: int,
        content: str,
        status: MessageStatus | None = None,
        stats: Mapping[str, Any] | None = None,
        note: str | None = None,
    ) -> None:
        """Replace a message's text; status, stats and note change only when given."""
        columns = ["content = ?"]
        values: list[Any] = [content]
        if status is not None:
            _check_status(status)
            columns.append("status = ?")
            values.append(status)
        if stats is not None:
            columns.append("stats = ?")
            values.append(_dump_object(dict(stats), "a reply's figures"))
        if note is not None:
            columns.append("note = ?")
            values.append(note)
        with self._transaction("save a message") as connection:
            row = connection.execute("SELECT chat_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                return  # deleted with its chat (maybe while it streamed): nothing left to update
            chat_id = row[0]
            connection.execute(
                f"UPDATE messages SET {', '.join(columns)} WHERE id = ?", (*values, message_id)
            )
            self._change_chat(connection, chat_id)

    def mark_retried(self, message_ids: Sequence[int]) -> None:
        """The prompt and reply of a failed attempt whose prompt was sent again: they stay in the
        record, but a chat restored later leaves them out of what the model is sent."""
        with self._transaction("save a retry") as connection:
            rows = [(message_id,) for message_id in message_ids]
            connection.executemany("UPDATE messages SET retried = 1 WHERE id = ?", rows)

    def delete_message(self, message_id: int) -> None:
        """Remove one message (a prompt withdrawn because no reply came); one already gone is fine."""
        with self._transaction("delete a message") as connection:
            row = connection.execute("SELECT chat_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                return
            connection.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            self._change_chat(connection, row[0])

    def close(self) -> None:
        connection, self._connection = self._connection, None
        try:
            if connection is not None:
                connection.close()
        except sqlite3.Error as error:
            raise self._error("close", error) from error
        finally:
            self._release_lock()

    # Opening the file

    def _open(self) -> sqlite3.Connection:
        try:
            make_private_folders(self._path.parent)
        except OSError as error:
            raise HistoryError(
                f"cannot create the folder for llmdeck's chat history {self._path}: {_os_reason(error)}"
            ) from error
        alone = self._take_lock()
        try:
            connection = self._open_connection(alone)
        except BaseException:
            self._release_lock()
            raise
        if self._lock is not None:
            # Let other windows in now that this one's recovery is done.
            with suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_SH)
        return connection

    def _open_connection(self, alone: bool) -> sqlite3.Connection:
        connection = self._connect()
        try:
            self._prepare(connection, alone)
            return connection
        except _Damaged as damage:
            if not alone:
                _close_quietly(connection)
                # Moving it would leave the other window writing to the file moved aside.
                raise HistoryError(
                    f"llmdeck's chat history {self._path} could not be read ({damage}) and another "
                    "llmdeck window has it open: close the other windows and start llmdeck again"
                ) from damage
            # Closing lets SQLite tidy away journal files it sees no use for, and they may hold the
            # user's last messages: they move aside with the file first. Windows cannot rename an
            # open file, so there the move has to follow the close.
            if sys.platform == "win32":
                _close_quietly(connection)
            try:
                aside = self._move_aside()
            finally:
                _close_quietly(connection)
            self._problem = (
                f"llmdeck's chat history {self._path} could not be read ({damage}); it was moved to "
                f"{aside} and a new, empty history was started"
            )
        except BaseException:
            _close_quietly(connection)
            raise
        connection = self._connect()
        try:
            self._prepare(connection, alone)
        except BaseException as error:
            _close_quietly(connection)
            if isinstance(error, _Damaged):
                # A file llmdeck has just created is not damaged unless something else writes it.
                raise HistoryError(f"cannot start a new chat history at {self._path}: {error}") from error
            raise
        return connection

    def _connect(self) -> sqlite3.Connection:
        self._create_private_file()
        try:
            # isolation_level=None: the module opens no transactions of its own, so each method's
            # BEGIN ... COMMIT below is exactly one transaction.
            return sqlite3.connect(
                self._path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as error:
            raise self._error("open", error) from error

    def _prepare(self, connection: sqlite3.Connection, alone: bool) -> None:
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # The version is read before anything can write: a newer llmdeck's file stays as it was.
            version = _user_version(connection)
            if version > SCHEMA_VERSION:
                raise HistoryError(
                    f"llmdeck's chat history {self._path} was written by a newer llmdeck (schema "
                    f"version {version}; this one knows up to {SCHEMA_VERSION}). It was left as it is: "
                    "update llmdeck to open it"
                )
            check = connection.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise _Damaged("; ".join(str(row[0]) for row in check[:3]) or "the integrity check failed")
            connection.execute("PRAGMA journal_mode = WAL")
            # FULL makes each commit reach the disk before it returns, so a power cut cannot lose
            # a message the app has shown as saved; fullfsync does the same on macOS, where a
            # plain fsync leaves the data in the drive's cache.
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute("PRAGMA fullfsync = ON")
            connection.execute("PRAGMA foreign_keys = ON")
            # A deleted chat's text is overwritten, not left in the file's free pages for anyone
            # who opens the file to read.
            connection.execute("PRAGMA secure_delete = ON")
            self._migrate(connection)
            if alone:
                with _transaction(connection, write=True):
                    # The app died while these replies were streaming: they will never be finished.
                    # (With another window open, a reply may be streaming there right now.)
                    connection.execute(
                        "UPDATE messages SET status = 'interrupted' WHERE status = 'streaming'"
                    )
        except sqlite3.Error as error:
            if error.sqlite_errorcode & 0xFF in _DAMAGED:
                raise _Damaged(str(error)) from error
            raise self._error("open", error) from error

    def _migrate(self, connection: sqlite3.Connection) -> None:
        while True:
            # Read again inside each write transaction: another llmdeck window may be migrating
            # the same file at the same moment.
            with _transaction(connection, write=True):
                version = _user_version(connection)
                if version >= SCHEMA_VERSION:
                    return
                for statement in MIGRATIONS[version]:
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {version + 1}")

    def _take_lock(self) -> bool:
        """Hold a lock file while the history is open; True if no other llmdeck has it open.

        Returns holding the lock exclusively if alone (until `_open` has finished recovering),
        shared otherwise. Without file locks (Windows, some network file systems) each llmdeck
        counts as alone, so a crashed reply is still marked interrupted.
        """
        if sys.platform == "win32":
            return True
        try:
            self._lock = os.open(
                self._path.with_name(f".{self._path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600
            )
        except OSError:
            return True
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        except OSError:
            return True
        # Another window has it open; wait (briefly) for one still opening to finish its recovery.
        with suppress(OSError):
            fcntl.flock(self._lock, fcntl.LOCK_SH)
        return False

    def _release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            os.close(lock)  # closing releases the lock

    def _create_private_file(self) -> None:
        # SQLite would create the file with the umask's mode; its -wal and -shm files take the
        # database file's mode, so creating it 0600 first keeps all three private.
        try:
            descriptor = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        except OSError as error:
            raise HistoryError(
                f"cannot create llmdeck's chat history {self._path}: {_os_reason(error)}"
            ) from error
        os.close(descriptor)

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self._path.with_name(f"{self._path.name}.broken-{stamp}")
        number = 1
        while any(os.path.lexists(f"{aside}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")):
            aside = self._path.with_name(f"{self._path.name}.broken-{stamp}-{number}")
            number += 1
        try:
            # The journal files go with the database and keep SQLite's naming, so opening the moved
            # file with sqlite3 still finds whatever they hold.
            for suffix in ("-wal", "-shm", "-journal"):
                with suppress(FileNotFoundError):
                    os.rename(f"{self._path}{suffix}", f"{aside}{suffix}")
            os.rename(self._path, aside)
        except OSError as error:
            raise HistoryError(
                f"llmdeck's chat history {self._path} cannot be read and could not be moved aside: "
                f"{_os_reason(error)}"
            ) from error
        return aside

    # Writing

    @contextmanager
    def _transaction(self, action: str, write: bool = True) -> Iterator[sqlite3.Connection]:
        connection = self._connection
        if connection is None:
            raise self._error(action, "it is closed")
        try:
            with _transaction(connection, write=write):
                yield connection
        except sqlite3.Error as error:
            raise self._error(action, error) from error

    def _change_chat(
        self,
        connection: sqlite3.Connection,
        chat_id: int,
        assignments: str = "",
        values: tuple[Any, ...] = (),
        now: float | None = None,
        must_exist: bool = False,
    ) -> None:
        """Apply `assignments` to the chat and mark it changed: every write to a chat is one.

        A chat deleted meanwhile (in this window or another) has nothing left to change, which is
        no failure; only a message for it would be lost, hence `must_exist`.
        """
        columns = f"{assignments}, updated_at = ?" if assignments else "updated_at = ?"
        cursor = connection.execute(
            f"UPDATE chats SET {columns} WHERE id = ?",
            (*values, time.time() if now is None else now, chat_id),
        )
        if must_exist and cursor.rowcount == 0:
            raise HistoryError(f"chat {chat_id} is not in llmdeck's chat history {self._path}")

    def _error(self, action: str, reason: object) -> HistoryError:
        # "cannot read llmdeck's chat history F: ..." / "cannot save a message in llmdeck's chat ..."
        preposition = "" if action in ("open", "close", "read") else " in"
        return HistoryError(f"cannot {action}{preposition} llmdeck's chat history {self._path}: {reason}")


class AsyncHistory:
    """The History used from asyncio code without blocking the event loop.

    Every call runs on one dedicated worker thread, in the order the calls were made.
    """

    def __init__(self, history: History) -> None:
        self._history = history
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmdeck-history")
        self._closed = False
        # Only the worker thread touches this while the executor runs.
        self._failure: BaseException | None = None

    @property
    def history(self) -> History:
        """The History underneath (for `path` and `problem`); its methods are not thread-safe, so
        call them directly only while nothing submitted here is pending."""
        return self._history

    async def chats(self) -> list[StoredChat]:
        return await self._call(self._history.chats)

    async def create_chat(
        self,
        title: str,
        model: str | None,
        system_prompt: str = "",
        options: Mapping[str, Any] | None = None,
    ) -> StoredChat:
        return await self._call(partial(self._history.create_chat, title, model, system_prompt, options))

    async def rename_chat(self, chat_id: int, title: str) -> None:
        await self._call(partial(self._history.rename_chat, chat_id, title))

    async def set_system_prompt(self, chat_id: int, text: str) -> None:
        await self._call(partial(self._history.set_system_prompt, chat_id, text))

    async def set_model(self, chat_id: int, model: str | None, options: Mapping[str, Any]) -> None:
        await self._call(partial(self._history.set_model, chat_id, model, dict(options)))

    async def delete_chat(self, chat_id: int) -> None:
        await self._call(partial(self._history.delete_chat, chat_id))

    async def delete_chat_if_empty(self, chat_id: int) -> bool:
        return await self._call(partial(self._history.delete_chat_if_empty, chat_id))

    async def add_message(
        self, chat_id: int, role: str, content: str, status: MessageStatus = "complete"
    ) -> StoredMessage:
        return await self._call(partial(self._history.add_message, chat_id, role, content, status))

    async def update_message(
        self,
        message_id: int,
        content: str,
        status: MessageStatus | None = None,
        stats: Mapping[str, Any] | None = None,
        note: str | None = None,
    ) -> None:
        await self._call(
            partial(self._history.update_message, message_id, content, status, _copy(stats), note)
        )

    async def delete_message(self, message_id: int) -> None:
        await self._call(partial(self._history.delete_message, message_id))

    async def mark_retried(self, message_ids: Sequence[int]) -> None:
        await self._call(partial(self._history.mark_retried, tuple(message_ids)))

    def update_message_soon(
        self,
        message_id: int,
        content: str,
        status: MessageStatus | None = None,
        stats: Mapping[str, Any] | None = None,
        note: str | None = None,
    ) -> None:
        """Write without waiting (a streaming reply's partial text).

        A failure is kept and raised, as HistoryError, by the next `flush()` (or `aclose()`); the
        calls in between still run, so the final text of a reply is written even after a partial
        write failed.
        """
        job = partial(self._history.update_message, message_id, content, status, _copy(stats), note)
        self._submit(partial(self._run_soon, job))

    async def flush(self) -> None:
        """Wait until everything submitted so far is written; raise a failure kept from it."""
        await self._call(self._raise_kept_failure)

    async def aclose(self) -> None:
        """Flush, close the file and end the worker thread; a kept failure is raised after that."""
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            self._closed = True
            closing = self._executor.submit(self._history.close)
            self._executor.shutdown(wait=False)
            await asyncio.wrap_future(closing)

    def close(self) -> None:
        """Like aclose, for shutdown paths outside the event loop: blocks until pending work is written."""
        if self._closed:
            return
        self._closed = True
        closing = self._executor.submit(self._history.close)
        self._executor.shutdown(wait=True)
        closing.result()
        self._raise_kept_failure()

    async def _call(self, job: Callable[[], T]) -> T:
        return await asyncio.wrap_future(self._submit(partial(self._run, job)))

    def _submit(self, job: Callable[[], T]) -> Future[T]:
        if self._closed:
            raise HistoryError(f"llmdeck's chat history {self._history.path} is closed")
        return self._executor.submit(job)

    def _run(self, job: Callable[[], T]) -> T:
        # A failed fire-and-forget write does not stop this one: the final text of a reply must be
        # tried even when a partial save of it failed (`flush` reports the earlier failure).
        return job()

    def _run_soon(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception as error:
            # The first failure says why; later writes are still tried (a full disk may have room
            # again), and their failures most likely repeat the first.
            if self._failure is None:
                self._failure = error

    def _raise_kept_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is None:
            return
        if isinstance(failure, HistoryError):
            raise failure
        raise HistoryError(f"cannot save a message in llmdeck's chat history: {failure}") from failure


class ReplyWriter:
    """Decides when a streaming reply's partial text is written: at most once per interval.

    Tokens can arrive hundreds of times a second, and each write waits for the disk; twice a
    second bounds what a crash can lose without making the disk the bottleneck.
    """

    def __init__(self, interval_s: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        """True if the partial text should be written now (the first call always is)."""
        now = self._clock()
        if self._last is not None and now - self._last < self._interval_s:
            return False
        self._last = now
        return True


@contextmanager
def _transaction(connection: sqlite3.Connection, write: bool) -> Iterator[None]:
    # IMMEDIATE takes the write lock at once, so a busy file waits in BEGIN (under busy_timeout)
    # rather than failing halfway through; reads take a snapshot so chats and messages agree.
    connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            with suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        raise


def _close_quietly(connection: sqlite3.Connection) -> None:
    with suppress(sqlite3.Error):
        connection.close()


def _user_version(connection: sqlite3.Connection) -> int:
    row = connection.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def _row_id(cursor: sqlite3.Cursor) -> int:
    if cursor.lastrowid is None:  # pragma: no cover - an INSERT always sets it
        raise HistoryError("SQLite did not report the new row's id")
    return cursor.lastrowid


def _message(row: tuple[Any, ...]) -> StoredMessage:
    message_id, chat_id, role, content, status, created_at, stats, note, retried = row
    return StoredMessage(
        id=message_id,
        chat_id=chat_id,
        role=role,
        content=content,
        # The schema lets any text in; one this llmdeck does not know is shown as an ordinary message.
        status=status if status in _STATUSES else "complete",
        created_at=created_at,
        stats=None if stats is None else _load_object(stats),
        note=note,
        retried=bool(retried),
    )


def _check_status(status: str) -> None:
    if status not in _STATUSES:
        raise ValueError(f"unknown message status {status!r}")


def _dump_object(value: dict[str, Any], what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise HistoryError(f"cannot save {what} in llmdeck's chat history: {error}") from error


def _load_object(text: object) -> dict[str, Any] | None:
    # A hand edit or a bug may have left anything in a JSON column; the chat is still worth showing.
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _copy(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    # The worker writes later; a caller changing its dict meanwhile must not change what is saved.
    return None if value is None else dict(value)


def _os_reason(error: OSError) -> str:
    reason = error.strerror or str(error)
    if error.filename is not None:
        reason = f"{reason}: {os.fsdecode(error.filename)}"
    return reason


@dataclass(frozen=True, slots=True)
class HistorySummary:
    """What `llmdeck doctor` says about the history file, read without changing it."""

    path: Path
    exists: bool
    size_bytes: int
    schema_version: int | None
    chats: int | None
    messages: int | None
    problem: str | None


def summarize(path: Path) -> HistorySummary:
    """Count the chats and messages read-only: no migration, no lock, nothing marked interrupted."""
    if not path.exists():
        return HistorySummary(path, False, 0, None, None, None, None)
    size = sum(part.stat().st_size for part in (path, path.with_name(path.name + "-wal")) if part.exists())
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
            chats = int(connection.execute("SELECT count(*) FROM chats").fetchone()[0])
            messages = int(connection.execute("SELECT count(*) FROM messages").fetchone()[0])
        finally:
            connection.close()
    except sqlite3.Error as error:
        return HistorySummary(
            path, True, size, None, None, None, f"not readable as llmdeck's history: {error}"
        )
    problem = None
    if version > SCHEMA_VERSION:
        problem = f"written by a newer llmdeck (schema {version}, this one reads up to {SCHEMA_VERSION})"
    return HistorySummary(path, True, size, version, chats, messages, problem)
