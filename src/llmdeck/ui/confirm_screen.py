"""A yes/no question before something that cannot be undone; No is the default."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from llmdeck.sanitize import inert


class ConfirmScreen(ModalScreen[bool]):
    """Dismissed with True for yes, False for no (Esc, n, or the No button)."""

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
    }
    ConfirmScreen > Vertical {
        width: 72;
        max-width: 100%;
        height: auto;
        border: round $warning;
        background: $surface;
        padding: 1 2;
    }
    ConfirmScreen #confirm-question {
        margin-bottom: 1;
    }
    ConfirmScreen Horizontal {
        height: auto;
        align-horizontal: right;
    }
    ConfirmScreen Button {
        margin-left: 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(
        self, question: str | Text, *, yes_label: str = "Yes", no_label: str = "No", title: str = "Confirm"
    ) -> None:
        super().__init__()
        # Text, never markup: a question quotes names and titles that came from elsewhere.
        self.question = question if isinstance(question, Text) else Text(inert(question))
        self.yes_label = yes_label
        self.no_label = no_label
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            box.border_subtitle = "y / n"
            yield Static(self.question, id="confirm-question")
            with Horizontal():
                yield Button(self.no_label, id="confirm-no", variant="primary")
                yield Button(self.yes_label, id="confirm-yes", variant="error")

    def on_mount(self) -> None:
        # An Enter that was meant for something else must not say yes.
        self.query_one("#confirm-no", Button).focus()

    @property
    def question_text(self) -> str:
        return self.question.plain

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed, "#confirm-yes")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#confirm-no")
    def _no(self) -> None:
        self.dismiss(False)
