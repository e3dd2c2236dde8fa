"""A small dialog that asks for one piece of text: a chat's name, a system prompt, a file name."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static, TextArea


class AskText(ModalScreen[str | None]):
    """Returns the text (Enter, or ctrl+s when it has several lines), or None on Esc."""

    DEFAULT_CSS = """
    AskText {
        align: center middle;
    }
    AskText > Vertical {
        width: 80%;
        max-width: 100;
        height: auto;
        max-height: 80%;
        padding: 1 2;
        border: round $accent;
        background: $surface;
    }
    AskText .hint {
        color: $text-muted;
        margin-top: 1;
    }
    AskText TextArea {
        height: 10;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def __init__(self, title: str, value: str, hint: str, *, multiline: bool = False) -> None:
        super().__init__()
        self._title = title
        self._value = value
        self._hint = hint
        self._multiline = multiline

    def compose(self) -> ComposeResult:
        with Vertical() as frame:
            frame.border_title = self._title
            if self._multiline:
                yield TextArea(self._value, id="text", soft_wrap=True, show_line_numbers=False)
            else:
                yield Input(self._value, id="text", select_on_focus=False)
            yield Static(Text(self._hint), classes="hint")

    def on_mount(self) -> None:
        self.query_one("#text").focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_save(self) -> None:
        field = self.query_one("#text")
        if isinstance(field, TextArea):
            self.dismiss(field.text)
        elif isinstance(field, Input):
            self.dismiss(field.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
