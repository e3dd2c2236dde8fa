"""The models pane: what Ollama has installed, how each fits this machine, sortable; the chosen
row is what the chat uses."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from llmdeck.fit.report import FitRow
from llmdeck.ollama_api import InstalledModel
from llmdeck.sanitize import inert
from llmdeck.ui.palette import Tone, follow_theme, tone
from llmdeck.ui.steady_scroll import SteadyScrollView
from llmdeck.units import GIB, decimal_size


@dataclass(frozen=True, slots=True)
class ModelRow:
    model: InstalledModel
    fit: FitRow | None


@dataclass(frozen=True, slots=True)
class SortColumn:
    key: str
    label: str
    value: Callable[[ModelRow], Any]
    descending_first: bool


def parameter_count(text: str) -> float:
    """'8.0B' -> 8e9, '567M' -> 5.67e8; unknown sorts first."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMBT]?)\s*", text.upper())
    if not match:
        return -1.0
    scale = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[match.group(2)]
    return float(match.group(1)) * scale


VERDICT_RANK = {"gpu": 3, "partial": 2, "cpu": 1, "none": 0}
VERDICT_TONE: dict[str, Tone] = {"gpu": "success", "partial": "warning", "cpu": "accent", "none": "error"}


def _verdict(row: ModelRow) -> int:
    return VERDICT_RANK[row.fit.plan.verdict] if row.fit else -1


def _speed(row: ModelRow) -> float:
    if row.fit is None:
        return -1.0
    return row.fit.tokens_per_s or 0.0


COLUMNS: tuple[SortColumn, ...] = (
    SortColumn("name", "Model", lambda r: r.model.name.lower(), False),
    SortColumn("fit", "Fit", _verdict, True),
    SortColumn("gpu", "GPU", lambda r: r.fit.plan.num_gpu if r.fit else -1, True),
    SortColumn("speed", "tok/s", _speed, True),
    SortColumn("memory", "Mem", lambda r: r.fit.plan.size if r.fit else -1, True),
    SortColumn("size", "Size", lambda r: r.model.size_bytes, True),
    SortColumn("params", "Params", lambda r: parameter_count(r.model.parameter_size), True),
    SortColumn("quant", "Quant", lambda r: r.model.quantization.lower(), False),
    SortColumn("family", "Family", lambda r: r.model.family.lower(), False),
)
SIZE_COLUMN = COLUMNS[5]


# What the model list's keys do to the highlighted model (or the chat's).
ACTIONS_ON_A_MODEL = frozenset({"cycle_context", "step_gpu", "unload", "load", "remove", "details"})


class ModelsPane(DataTable[str | Text], SteadyScrollView):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "next_sort", "Sort", id="models.sort"),
        Binding("r", "reverse_sort", "Reverse", id="models.reverse"),
        Binding("enter", "select_cursor", "Chat with it", id="models.choose"),
        Binding("c", "cycle_context", "Context", id="models.context"),
        Binding("minus", "step_gpu(-1)", "GPU layers -", id="models.gpu_down"),
        Binding("plus,equals_sign", "step_gpu(1)", "GPU layers +", id="models.gpu_up"),
        Binding("u", "unload", "Unload", id="models.unload"),
        Binding("l", "load", "Load", id="models.load"),
        Binding("p", "pull", "Pull", id="models.pull"),
        Binding("b", "browse", "Browse catalog", id="models.browse", show=False),
        # Off the footer, which has no room left for them: F1 lists them with the others.
        Binding("x,delete", "remove", "Remove", id="models.remove", show=False),
        Binding("i", "details", "Details", id="models.details", show=False),
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

    class ContextCycled(Message):
        """The user asked for the next context length; the app re-plans."""

    class UnloadRequested(Message):
        """Unload the highlighted model from Ollama's memory now."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    class LoadRequested(Message):
        """Load the highlighted model into Ollama's memory now, so its first reply is fast."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    class PullRequested(Message):
        """Pull a model: `name` to prefill, or None to ask (with the catalog's suggestions)."""

        def __init__(self, name: str | None) -> None:
            super().__init__()
            self.name = name

    class RemoveRequested(Message):
        """Remove the highlighted model from the server's store, once the user confirms."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    class BrowseRequested(Message):
        """Show every catalog model and quant with its plan for this machine."""

    class DetailsRequested(Message):
        """Show what Ollama says about the highlighted model, and its plan."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    class GpuLayersStepped(Message):
        """The user asked for one GPU layer more or less for the chat's model."""

        def __init__(self, step: int) -> None:
            super().__init__()
            self.step = step

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.border_title = "Models"
        self._models: list[InstalledModel] = []
        self._fits: dict[str, FitRow] = {}
        self._sort = SIZE_COLUMN
        self._descending = True
        self._context_label = ""
        self._on_disk: set[str] | None = None
        self.active: str | None = None
        # Set while the list shown is the one the server gave last time, not yet its answer.
        self.seen_at: datetime | None = None
        self._listed_by_server = False

    def on_mount(self) -> None:
        for column in COLUMNS:
            self.add_column(column.label, key=column.key)
        follow_theme(self, self._render_rows)

    def show_models(self, models: list[InstalledModel], active: str | None) -> None:
        self._models = list(models)
        self.active = active
        self.seen_at = None
        self._listed_by_server = True
        self._render_rows()

    def show_seen(self, models: list[InstalledModel], seen_at: datetime) -> None:
        """The list the server gave when last seen, until it answers (no plans: they need it)."""
        self._models = list(models)
        self.seen_at = seen_at
        self._listed_by_server = False
        self._render_rows()

    def show_fits(self, fits: Mapping[str, FitRow], context_label: str) -> None:
        """Plans for the installed models at the session's context."""
        self._fits = dict(fits)
        self._context_label = context_label
        self._render_rows()

    def mark_store(self, on_disk: set[str] | None) -> None:
        """Models in the store the server uses; a served model missing there gets marked."""
        self._on_disk = on_disk
        self._render_rows()

    def fit_of(self, name: str) -> FitRow | None:
        return self._fits.get(name)

    def show_unavailable(self, reason: str) -> None:
        self._models = []
        self.seen_at = None
        self._listed_by_server = False
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
        self._render_rows()

    def set_active(self, name: str) -> None:
        self.active = name
        self._render_rows()

    def action_next_sort(self) -> None:
        index = COLUMNS.index(self._sort)
        self.sort_by(COLUMNS[(index + 1) % len(COLUMNS)].key)

    def action_reverse_sort(self) -> None:
        self.sort_by(self._sort.key, not self._descending)

    def action_cycle_context(self) -> None:
        self.post_message(self.ContextCycled())

    def action_unload(self) -> None:
        name = self._highlighted_name()
        if name is not None:
            self.post_message(self.UnloadRequested(name))

    def action_load(self) -> None:
        name = self._highlighted_name()
        if name is not None:
            self.post_message(self.LoadRequested(name))

    def action_pull(self) -> None:
        # Pulling is about a model that is not here yet; the highlighted row says nothing of it.
        self.post_message(self.PullRequested(None))

    def action_browse(self) -> None:
        self.post_message(self.BrowseRequested())

    def action_remove(self) -> None:
        name = self._highlighted_name()
        if name is not None:
            self.post_message(self.RemoveRequested(name))

    def action_details(self) -> None:
        name = self._highlighted_name()
        if name is not None:
            self.post_message(self.DetailsRequested(name))

    def highlighted(self) -> str | None:
        """The model under the cursor, if any."""
        return self._highlighted_name()

    def action_step_gpu(self, step: int) -> None:
        self.post_message(self.GpuLayersStepped(step))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = str(event.column_key.value)
        if key == self._sort.key:
            self.action_reverse_sort()
        else:
            self.sort_by(key)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # A list seen last time may name models since removed: nothing is done to one until the
        # server has answered (a second at most, unless it is down, which clears the list).
        return not (self.seen_at is not None and action in ACTIONS_ON_A_MODEL)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if self.seen_at is not None:
            self.notify("Ollama has not answered yet: this is the list it gave last time", timeout=3)
            return
        name = str(event.row_key.value)
        self.set_active(name)
        self.post_message(self.ModelChosen(name))

    def _render_rows(self) -> None:
        highlighted = self._highlighted_name()
        rows = [ModelRow(model, self._fits.get(model.name)) for model in self._models]
        rows.sort(key=self._sort.value, reverse=self._descending)
        self.clear()
        for row in rows:
            model = row.model
            chosen = model.name == self.active
            marker = "● " if chosen else "  "
            label = Text(marker + inert(model.name), style="bold" if chosen else "")
            if self._on_disk is not None and model.name not in self._on_disk:
                label.append(" (not in store)", style=tone(self, "warning"))
            self.add_row(
                label,
                *fit_cells(row.fit, {verdict: tone(self, name) for verdict, name in VERDICT_TONE.items()}),
                decimal_size(model.size_bytes),
                inert(model.parameter_size) or "?",
                inert(model.quantization) or "?",
                inert(model.family) or "?",
                key=model.name,
            )
        if self.seen_at is not None:
            self.border_subtitle = f"last seen {when(self.seen_at)} · asking Ollama…"
        elif self._models:
            parts = [f"{len(self._models)} installed", f"sorted by {self._sort.label}"]
            if self._context_label:
                parts.insert(1, self._context_label)
            if any(fit.calibration is not None for fit in self._fits.values()):
                parts.append("* tok/s measured here")
            self.border_subtitle = " · ".join(parts)
        elif self._listed_by_server:
            self.border_subtitle = "none installed · p pulls one"
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


def when(moment: datetime, now: datetime | None = None) -> str:
    """A past moment as a user reads it: the local time today, else the date."""
    local = moment.astimezone()
    today = (now or datetime.now(local.tzinfo)).astimezone().date()
    return local.strftime("%H:%M") if local.date() == today else local.strftime("%Y-%m-%d")


def fit_cells(fit: FitRow | None, verdict_colours: dict[str, str]) -> tuple[Text, str, str | Text, str]:
    if fit is None:
        return Text("…", style="dim", justify="left"), "", "", ""
    plan = fit.plan
    verdict = Text(plan.verdict, style=verdict_colours[plan.verdict], justify="left")
    layers = f"{plan.num_gpu}/{plan.layers_total}"
    if fit.tokens_per_s is None:
        speed: str | Text = "?"
    elif fit.calibration is not None:
        # Corrected by what replies on this machine measured: no longer just an estimate.
        speed = Text(f"{fit.tokens_per_s:.0f}*", style="bold")
    else:
        speed = f"~{fit.tokens_per_s:.0f}"
    memory = f"{plan.size / GIB:.1f}G"
    return verdict, layers, speed, memory
