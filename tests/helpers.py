"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import io
import socket
import unicodedata
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from textual import events
from textual.app import App
from textual.geometry import Region
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key
from textual.pilot import Pilot
from textual.widget import Widget

from llmdeck.config import Setting, Settings

DATA = Path(__file__).parent / "data"


def fast_settings(host: str) -> Settings:
    """Settings for tests: reconnect quickly so recovery is seen within a second."""
    return Settings(
        host=Setting(host, "command line"), reconnect_initial_s=0.05, reconnect_max_s=0.2, heartbeat_s=0.2
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> None:
    """Poll until `predicate` holds; fail with a clear message if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(step)


async def type_text(pilot: Pilot[None], text: str) -> None:
    """Type `text` as key presses, like `pilot.press(*text)`, without waiting for idle after each key.

    Each character is the `events.Key` that `App._press_keys` sends for it, through the same
    driver, in order. `pilot.press` waits twice for the process to go idle after every key; the
    app's heartbeat keeps it from ever quite doing so, which costs seconds per prompt.
    """
    await press_now(pilot, *(_character_to_key(c) if not c.isalnum() else c for c in text))


async def press_now(pilot: Pilot[None], *keys: str) -> None:
    """`pilot.press(*keys)` without its waits for idle: while a reply streams they last up to 2 s a
    key, long enough for a short reply to be over before the test looks at it."""
    app = pilot.app
    driver = app._driver
    assert driver is not None
    for key in keys:
        # The character `_press_keys` gives the event: it does not round-trip every key name.
        try:
            char: str | None = unicodedata.lookup(_get_unicode_name_from_key(REPLACED_KEYS.get(key, key)))
        except KeyError:
            char = key if len(key) == 1 else None
        event = events.Key(key, char)
        event.set_sender(app)
        driver.send_message(event)
    # The driver queues each event on the app from a task of its own: once a task queued after
    # them has run, every key is in the app's queue, ahead of what the pause waits on.
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(asyncio.sleep(0), asyncio.get_running_loop()))
    await pilot.pause()


def widget_text(widget: Widget) -> str:
    """The characters a widget shows on screen, borders and child widgets included."""
    if not widget.children:
        lines = widget.render_lines(Region(0, 0, widget.outer_size.width, widget.outer_size.height))
        return "\n".join(line.text for line in lines)
    # A container draws nothing of its children itself: read its area of the composed screen.
    update = widget.screen._compositor.render_update(full=True)
    region = widget.region
    strips = update.strips[region.y : region.y + region.height]  # type: ignore[attr-defined]
    rows = ["".join(strip.text for strip in line) for line in strips]
    return "\n".join(row[region.x : region.x + region.width] for row in rows)


def terminal_output(app: App[None]) -> str:
    """What the app would write to the terminal for a full redraw, escape sequences included."""
    update = app.screen._compositor.render_update(full=True)
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=app.size.width)
    return str(update.render_segments(console))
