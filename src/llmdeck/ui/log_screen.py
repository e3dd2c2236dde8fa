"""The end of the log of the `ollama serve` llmdeck started."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from llmdeck.sanitize import inert


class LogScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    LogScreen {
        align: center middle;
    }
    LogScreen > VerticalScroll {
        width: 100;
        max-width: 100%;
        height: 80%;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f9,q", "close", "Close", id="log.close"),
    ]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = self.title_text
            box.border_subtitle = "Esc closes"
            # The server's own words, made inert: a log line must not drive the terminal.
            yield Static(Text(inert(self.text)))

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).scroll_end(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
