"""`llmdeck doctor` describes the chat history without touching it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess

from helpers import DATA
from test_cli import llmdeck_command

from llmdeck.history import SCHEMA_VERSION, History, history_path

OFFLINE = "127.0.0.1:9"


def doctor_json() -> dict[str, object]:
    recorded = str(DATA / "workstation-rtx4090.json")
    command = [*llmdeck_command(), "--hardware", recorded, "--host", OFFLINE, "doctor", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=dict(os.environ))
    history = json.loads(result.stdout)["history"]
    assert isinstance(history, dict)
    return history


def test_no_history_yet_is_said_and_not_created() -> None:
    history = doctor_json()
    assert history["exists"] is False and history["path"] == str(history_path())
    assert not history_path().exists()


def test_the_history_is_counted_and_left_exactly_as_it_was() -> None:
    kept = History(history_path())
    chat = kept.create_chat("one", "llama3.2:3b")
    kept.add_message(chat.id, "user", "hello")
    kept.add_message(chat.id, "assistant", "hal", status="streaming")  # as a crash leaves it
    kept.close()
    before = history_path().read_bytes(), history_path().stat().st_mtime_ns
    history = doctor_json()
    assert (history["chats"], history["messages"], history["problem"]) == (1, 2, None)
    assert history["schema_version"] == SCHEMA_VERSION
    assert (history_path().read_bytes(), history_path().stat().st_mtime_ns) == before
    # Read-only: the reply cut short is still "streaming", for llmdeck itself to mark.
    with sqlite3.connect(f"file:{history_path()}?mode=ro", uri=True) as db:
        assert db.execute("SELECT status FROM messages ORDER BY id DESC").fetchone() == ("streaming",)


def test_a_file_that_is_not_a_history_is_a_problem_not_a_crash() -> None:
    history_path().parent.mkdir(parents=True, exist_ok=True)
    history_path().write_bytes(b"not a database at all" * 100)
    history = doctor_json()
    assert history["exists"] is True and "not readable" in str(history["problem"])
    assert history_path().read_bytes() == b"not a database at all" * 100
