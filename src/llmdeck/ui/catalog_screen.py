"""Every model and quant of llmdeck's catalog, planned for this machine: what runs here, and how.

The plans are the ones the suggestion under the model list is picked from (computed in a thread
after start-up), so opening the window costs no planning. Typing filters; Enter takes the
highlighted model to the pull window.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from llmdeck.fit.catalog import installed_matcher
from llmdeck.fit.report import FitRow
from llmdeck.ui.models_pane import VERDICT_RANK, VERDICT_TONE, fit_cells
from llmdeck.ui.palette import tone
from llmdeck.units import decimal_size

# Rows listed at a time, best first: Textual's table measures every cell of every row it is
# given, and all 663 made the window take ~0.6 s to open. Typing narrows the list.
SHOWN_AT_MOST = 100


def catalog_order(row: FitRow) -> tuple[int, int, int]:
    """Best fit first; within a fit, the largest model, and its largest (least squeezed) quant."""
    return -VERDICT_RANK[row.plan.verdict], -row.spec.parameter_count, -row.spec.file_bytes


def matches(row: FitRow, query: str) -> bool:
    """Every word typed appears in the name or the quant ("qwen 14b q4" finds qwen2.5:14b, whose
    name does not say it is Q4_K_M, as well as qwen2.5:14b-instruct-q4_0)."""
    searched = f"{row.spec.name} {row.spec.file_type}".lower()
    return all(word in searched for word in query.lower().split())


def parameters(count: int) -> str:
    return f"{count / 1e9:.1f}B" if count >= 1e9 else f"{count / 1e6:.0f}M"


class CatalogScreen(ModalScreen[str | None]):
    """Dismissed with the model to pull, or None."""

    DEFAULT_CSS = """
    CatalogScreen {
        align: center middle;
    }
    CatalogScreen > Vertical {
        width: 110;
        max-width: 100%;
        height: 90%;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    CatalogScreen #catalog-table {
        height: 1fr;
    }
    CatalogScreen #catalog-count {
        color: $text-muted;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="catalog.close"),
        # The filter keeps the keys: these move through the list under it.
        Binding("down", "move(1)", "Next", show=False),
        Binding("up", "move(-1)", "Previous", show=False),
        Binding("pagedown", "move(10)", "Page down", show=False),
        Binding("pageup", "move(-10)", "Page up", show=False),
    ]

    def __init__(self, rows: Sequence[FitRow], installed: Collection[str], context: str) -> None:
        super().__init__()
        self.rows = sorted(rows, key=catalog_order)
        self.is_installed = installed_matcher(installed)
        self.context = context

    def show_plans(self, rows: Sequence[FitRow], context: str) -> None:
        """New plans (the context changed meanwhile): listed under the same filter and cursor."""
        self.rows = sorted(rows, key=catalog_order)
        self.context = context
        if not self.is_mounted:
            return  # pushed but not yet built: it will be built from these
        self.query_one(Vertical).border_title = self._title()
        highlighted = self.highlighted()
        self._fill(self.query_one(Input).value)
        if highlighted in self.shown:
            self.query_one(DataTable).move_cursor(row=self.shown.index(highlighted))

    def _title(self) -> str:
        return f"Catalog · planned for this machine · {self.context}"

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self._title()
            box.border_subtitle = "type to filter · ↑↓ choose · Enter pulls · Esc closes"
            yield Input(placeholder="filter: family, size, quant (e.g. qwen 14b q4_k_m)", id="catalog-filter")
            yield DataTable[str | Text](cursor_type="row", zebra_stripes=True, id="catalog-table")
            yield Static("", id="catalog-count")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.can_focus = False  # the filter keeps the focus; the keys above move the cursor
        # Fixed widths: the list is refilled at every key typed, and columns sized by their content
        # would shift as the rows change.
        for label, key, width in (
            ("Model", "model", 40),
            ("Quant", "quant", 6),
            ("Fit", "fit", 7),
            ("GPU", "gpu", 7),
            ("tok/s", "speed", 5),
            ("Mem", "memory", 7),
            ("Params", "params", 6),
            ("File", "file", 7),
        ):
            table.add_column(label, key=key, width=width)
        self._fill("")
        self.query_one(Input).focus()

    @property
    def shown(self) -> list[str]:
        """The models listed now, in order."""
        table = self.query_one(DataTable)
        return [
            str(table.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value)
            for row in range(table.row_count)
        ]

    def highlighted(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def _fill(self, query: str) -> None:
        table = self.query_one(DataTable)
        table.clear()
        colours = {verdict: tone(self, name) for verdict, name in VERDICT_TONE.items()}
        listed = [row for row in self.rows if matches(row, query)]
        for row in listed[:SHOWN_AT_MOST]:
            installed = self.is_installed(row.spec.name)
            name = Text()
            name.append("✓ " if installed else "  ", style=tone(self, "success"))
            name.append(row.spec.name, style="bold" if installed else "")
            table.add_row(
                name,
                row.spec.file_type,
                *fit_cells(row, colours),
                parameters(row.spec.parameter_count),
                decimal_size(row.spec.file_bytes),
                key=row.spec.name,
            )
        runs = sum(1 for row in listed if row.plan.verdict in ("gpu", "partial"))
        found = f"{len(listed)} of {len(self.rows)} models and quants"
        if len(listed) > SHOWN_AT_MOST:
            found += f" (the best {SHOWN_AT_MOST} listed: type to narrow)"
        on_gpu = f"{runs} of them on the GPU, whole or in part"
        self.query_one("#catalog-count", Static).update(f"{found} · {on_gpu} · ✓ installed")

    @on(Input.Changed, "#catalog-filter")
    def _filter(self, event: Input.Changed) -> None:
        event.stop()
        self._fill(event.value)

    @on(Input.Submitted, "#catalog-filter")
    def _chosen(self, event: Input.Submitted) -> None:
        event.stop()
        name = self.highlighted()
        if name is not None:
            self.dismiss(name)

    @on(DataTable.RowSelected, "#catalog-table")
    def _clicked(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.dismiss(str(event.row_key.value))

    def action_move(self, rows: int) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            row = min(max(table.cursor_row + rows, 0), table.row_count - 1)
            table.move_cursor(row=row)

    def action_close(self) -> None:
        self.dismiss(None)
