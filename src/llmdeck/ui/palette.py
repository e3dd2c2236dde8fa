"""Colours from the current theme for text built in code (Rich `Text` spans).

Rich's named colours ("yellow", "dark_orange") ignore Textual's theme: on the light theme they
fell to 2:1 contrast. Widgets that build `Text` take their colours from here, and rebuild when
the theme changes (`follow_theme`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from textual.widget import Widget

Tone = Literal["primary", "warning", "error", "success", "accent"]
FALLBACK: dict[Tone, str] = {
    "primary": "cyan",
    "warning": "yellow",
    "error": "red",
    "success": "green",
    "accent": "magenta",
}


def tone(widget: Widget, name: Tone) -> str:
    """The theme's text colour for `name`, readable on the theme's background."""
    try:
        value = widget.app.theme_variables.get(f"text-{name}", "")
    except Exception:  # not attached to a running app (a test printing a renderable)
        return FALLBACK[name]
    # A theme for 16-colour terminals names ANSI colours, which Rich knows without the prefix.
    return value.removeprefix("ansi_") if value.startswith("ansi_") else value or FALLBACK[name]


def follow_theme(widget: Widget, redraw: Callable[[], None]) -> None:
    """Call `redraw` whenever the app's theme changes."""
    widget.app.theme_changed_signal.subscribe(widget, lambda _theme: redraw())
