"""Everything llmdeck writes about the user (chats, state, the server's log) is readable by them only.

The app runs for real: `ollama serve` started with F5 (a fake `ollama` that serves the loopback
stand-in), a reply, a theme change saved. Then every file it created is 0600 and every folder 0700,
whatever the umask: the test runs with umask 000, so a mode that came from the umask shows.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import fast_settings, free_port, type_text, wait_until
from test_launcher import fake_ollama  # noqa: F401 (the same fake `ollama` on PATH)
from textual.pilot import Pilot

from llmdeck.hardware import StaticProbe
from llmdeck.ollama_api import OllamaService
from llmdeck.ui.app import LlmdeckApp, OfflineBanner, create_app
from llmdeck.ui.chat_pane import ChatPane
from llmdeck.ui.models_pane import ModelsPane

XDG = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def created_under(home: Path, existing: set[Path]) -> dict[Path, int]:
    """Every path below `home` that was not there before, with its permission bits."""
    found = {}
    for folder, folders, files in os.walk(home):
        for name in folders + files:
            path = Path(folder) / name
            if path not in existing:
                found[path] = stat.S_IMODE(path.lstat().st_mode)
    return found


def not_private(found: dict[Path, int], home: Path) -> list[str]:
    wrong = []
    for path, mode in sorted(found.items()):
        expected = 0o700 if path.is_dir() else 0o600
        if mode != expected:
            wrong.append(f"{path.relative_to(home)}: {mode:04o}, not {expected:04o}")
    return wrong


async def start_ollama_with_f5(app: LlmdeckApp, pilot: Pilot[None]) -> None:
    await wait_until(lambda: "Press F5 to start ollama serve" in str(app.query_one(OfflineBanner).render()))
    await wait_until(lambda: app.store_path is not None)  # the banner's F5 waits for the store check
    await pilot.press("f5")
    await wait_until(lambda: app.query_one(ModelsPane).row_count == 4, timeout=20)


@pytest.mark.usefixtures("fake_ollama")
async def test_chats_state_and_the_server_log_are_readable_by_the_user_only(
    open_umask: None, recorded_probe: StaticProbe, isolated_home: Path
) -> None:
    existing = {Path(folder) for folder, _, _ in os.walk(isolated_home)}
    host = f"http://127.0.0.1:{free_port()}"
    app = create_app(OllamaService(host, connect_timeout_s=0.5), recorded_probe, fast_settings(host))
    async with app.run_test(size=(120, 40)) as pilot:
        await start_ollama_with_f5(app, pilot)
        await type_text(pilot, "Tell me about llamas")
        await pilot.press("enter")
        chat = app.query_one(ChatPane)
        await wait_until(
            lambda: not chat.streaming and chat.session is not None and len(chat.session.turns) == 2
        )
        theme = app.theme
        await pilot.press("f4")
        state = isolated_home / ".local/state/llmdeck/state.toml"
        await wait_until(lambda: state.exists() and app.theme != theme and app.theme in state.read_text())
        # While the chat is open SQLite keeps its write-ahead log and shared memory beside it.
        history = isolated_home / ".local/share/llmdeck/history.sqlite3"
        during = created_under(isolated_home, existing)
        for path in (history, Path(f"{history}-wal"), Path(f"{history}-shm"), state):
            assert path in during, f"{path} was not written: the test does not check what it means to"
        assert isolated_home / ".local/state/llmdeck/ollama-serve.log" in during
        assert not_private(during, isolated_home) == []
    after = created_under(isolated_home, existing)
    assert history in after
    assert not_private(after, isolated_home) == []


@pytest.mark.usefixtures("fake_ollama")
async def test_folders_made_for_the_server_log_on_a_fresh_account_are_private(
    open_umask: None,
    recorded_probe: StaticProbe,
    isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A new account has no ~/.local/state yet: F5 is the first thing to write there.
    monkeypatch.setenv("XDG_STATE_HOME", str(isolated_home / "fresh/state"))
    existing = {Path(folder) for folder, _, _ in os.walk(isolated_home)}
    host = f"http://127.0.0.1:{free_port()}"
    app = create_app(OllamaService(host, connect_timeout_s=0.5), recorded_probe, fast_settings(host))
    async with app.run_test(size=(120, 40)) as pilot:
        await start_ollama_with_f5(app, pilot)
        assert (isolated_home / "fresh/state/llmdeck/ollama-serve.log").exists()
        assert not_private(created_under(isolated_home, existing), isolated_home) == []
