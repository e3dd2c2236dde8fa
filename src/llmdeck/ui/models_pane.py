"""The models pane: what Ollama has installed, sortable; the chosen row is what the chat uses."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from llmdeck.ollama_api import InstalledModel
from llmdeck.sanitize import inert
from llmdeck.units import decimal_size


@dataclass(frozen=True, slots=True)
class SortColumn:
    key: str
    label: str
    value: Callable[[InstalledModel], Any]
    descending_first: bool


def parameter_count(text: str) -> float:
    """'8.0B' -> 8e9, '567M' -> 5.67e8; unknown sorts first."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMBT]?)\s*", text.upper())
    if not match:
        return -1.0
    scale = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[match.group(2)]
    return float(match.group(1)) * scale


COLUMNS: tuple[SortColumn, ...] = (
    SortColumn("name", "Model", lambda m: m.name.lower(), False),
    SortColumn("size", "Size", lambda m: m.size_bytes, True),
    SortColumn("params", "Params", lambda m: parameter_count(m.parameter_size), True),
    SortColumn("quant", "Quant", lambda m: m.quantization.lower(), False),
    SortColumn("family", "Family", lambda m: m.family.lower(), False),
)


class ModelsPane(DataTable[str | Text]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "next_sort", "Sort", id="models.sort"),
        Binding("r", "reverse_sort", "Reverse", id="models.reverse"),
        Binding("enter", "select_cursor", "Chat with it", id="models.choose"),
    ]

    DEFAULT_CSS = """
    ModelsPane {
        height: 1fr;
        border: round $primary 50%;
        border-title-color: $text;
    }
    ModelsPane:focus {
        border: round $accent;
    }
    """

    class ModelChosen(Message):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.border_title = "Models"
        self._models: list[InstalledModel] = []
        self._sort = COLUMNS[1]
        self._descending = True
        self.active: str | None = None

    def on_mount(self) -> None:
        for column in COLUMNS:
            self.add_column(column.label, key=column.key)

    def show_models(self, models: list[InstalledModel], active: str | None) -> None:
        self._models = list(models)
        self.active = active
        self.border_subtitle = f"{len(models)} installed · sorted by {self._sort.label.lower()}"
        self._render_rows()

    def show_unavailable(self, reason: str) -> None:
        self._models = []
        self.clear()
        self.border_subtitle = reason

    @property
    def sort_key(self) -> str:
        return self._sort.key

    @property
    def descending(self) -> bool:
        return self._descending

    def sorted_names(self) -> list[str]:
        return [str(key.value) for key in self.rows]

    def sort_by(self, key: str, descending: bool | None = None) -> None:
        column = next(c for c in COLUMNS if c.key == key)
        self._sort = column
        self._descending = column.descending_first if descending is None else descending
        if self._models:
            self.border_subtitle = f"{len(self._models)} installed · sorted by {column.label.lower()}"
        self._render_rows()

    def set_active(self, name: str) -> None:
        self.active = name
        self._render_rows()

    def action_next_sort(self) -> None:
        index = COLUMNS.index(self._sort)
        self.sort_by(COLUMNS[(index + 1) % len(COLUMNS)].key)

    def action_reverse_sort(self) -> None:
        self.sort_by(self._sort.key, not self._descending)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = str(event.column_key.value)
        if key == self._sort.key:
            self.action_reverse_sort()
        else:
            self.sort_by(key)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        name = str(event.row_key.value)
        self.set_active(name)
        self.post_message(self.ModelChosen(name))

    def _render_rows(self) -> None:
        highlighted = self._highlighted_name()
        ordered = sorted(self._models, key=self._sort.value, reverse=self._descending)
        self.clear()
        for model in ordered:
            marker = "● " if model.name == self.active else "  "
            name = Text(marker + inert(model.name), style="bold" if model.name == self.active else "")
            self.add_row(
                name,
                decimal_size(model.size_bytes),
                model.parameter_size or "?",
                model.quantization or "?",
                model.family or "?",
                key=model.name,
            )
        target = highlighted or self.active
        if target is not None and target in self.sorted_names():
            self.move_cursor(row=self.get_row_index(target), animate=False)

    def _highlighted_name(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except CellDoesNotExist:  # the cursor can point past the rows while they are replaced
            return None
