"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from textual.app import App
from textual.geometry import Region
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
