"""The help screen: every key binding as it is now (after the user's keymap), with its id."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > Vertical {
        width: 90;
        max-width: 100%;
        height: auto;
        max-height: 90%;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen DataTable {
        height: auto;
        max-height: 30;
    }
    HelpScreen #help-note {
        color: $text-muted;
        margin-top: 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,question_mark,q", "dismiss", "Close", id="help.close"),
    ]

    def __init__(self, rows: list[tuple[str, str, str, str]], config_hint: str) -> None:
        super().__init__()
        self.rows = rows
        self.config_hint = config_hint

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Keys"
            table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True)
            table.add_columns("Where", "Keys", "Action", "Binding id")
            for row in self.rows:
                table.add_row(*row)
            yield table
            yield Static(Text(self.config_hint), id="help-note")  # a Text: "[keymap]" is not markup

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
