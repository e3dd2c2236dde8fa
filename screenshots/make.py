"""Regenerate the README's screenshots from the real app.

The app runs against the loopback Ollama stand-in (tests/ollama_standin.py) with a recorded
hardware snapshot, exactly as the tests drive it, and each state is saved as an SVG here:

    python screenshots/make.py [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from helpers import DATA, fast_settings, wait_until  # noqa: E402
from ollama_standin import Reply, start_standin  # noqa: E402
from textual.widgets import Input  # noqa: E402

from llmdeck.hardware import HardwareSnapshot, StaticProbe  # noqa: E402
from llmdeck.ollama_api import OllamaService  # noqa: E402
from llmdeck.ui.app import LlmdeckApp, OfflineBanner, create_app  # noqa: E402
from llmdeck.ui.chat_pane import ChatPane  # noqa: E402

SIZE = (120, 40)
HANG_AFTER_S = 90
STATES = ("main.svg", "light.svg", "help.svg", "streaming.svg", "chat.svg", "offline.svg")
# The app remembers theme, model choices and chats: never in the real folders of whoever runs this.
STATE_DIR = tempfile.TemporaryDirectory(prefix="llmdeck-screenshots-")


def build(host: str) -> LlmdeckApp:
    probe = StaticProbe(HardwareSnapshot.load(DATA / "workstation-rtx4090.json"))
    state_file = Path(STATE_DIR.name) / "state.toml"
    # A fresh history per app: the screenshots show a first start, never the user's own chats.
    history_file = Path(tempfile.mkdtemp(dir=STATE_DIR.name)) / "history.sqlite3"
    return create_app(
        OllamaService(host), probe, fast_settings(host), state_file=state_file, history_file=history_file
    )


async def online_states(out: Path) -> None:
    standin = start_standin()
    standin.default_reply = Reply(token_delay_s=0.01)
    try:
        app = build(standin.url)
        async with app.run_test(size=SIZE) as pilot:
            app.query_one("#prompt", Input).cursor_blink = False
            await wait_until(lambda: app.query_one("#models").row_count > 0)
            await pilot.pause()
            app.save_screenshot("main.svg", str(out))
            app.theme = "llmdeck-light"
            await pilot.pause()
            app.save_screenshot("light.svg", str(out))
            app.theme = "llmdeck-dark"
            await pilot.press("f1")
            await pilot.pause()
            app.save_screenshot("help.svg", str(out))
            await pilot.press("escape")
            standin.default_reply = Reply(token_delay_s=0.04)
            await pilot.press(*"Tell me about llamas", "enter")
            chat = app.query_one(ChatPane)
            await wait_until(
                lambda: chat.streaming and "streaming" in str(chat.query_one("#chat-status").render())
            )
            await pilot.pause(1.0)
            app.save_screenshot("streaming.svg", str(out))
            await wait_until(
                lambda: not chat.streaming and "tok/s" in str(chat.query_one("#chat-status").render())
            )
            await pilot.pause()
            app.save_screenshot("chat.svg", str(out))
    finally:
        standin.server.stop()


async def offline_state(out: Path) -> None:
    app = build("http://127.0.0.1:9")
    async with app.run_test(size=SIZE) as pilot:
        app.query_one("#prompt", Input).cursor_blink = False
        await wait_until(lambda: app.query_one(OfflineBanner).has_class("shown"))
        await pilot.pause()
        app.save_screenshot("offline.svg", str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description="Regenerate llmdeck's screenshots.")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the SVGs (default: here)")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    # Should anything hang, say where (every thread's stack) and fail instead of waiting forever.
    faulthandler.dump_traceback_later(HANG_AFTER_S, exit=True)
    asyncio.run(online_states(out))
    asyncio.run(offline_state(out))
    faulthandler.cancel_dump_traceback_later()
    for name in STATES:
        print(out / name)


if __name__ == "__main__":
    main()
