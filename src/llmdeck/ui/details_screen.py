"""One model in detail: what Ollama says about it (`/api/show`) and llmdeck's plan for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from llmdeck.fit.planner import processor_split
from llmdeck.fit.report import FitRow
from llmdeck.ollama_api import OllamaError, OllamaService, RunningModel
from llmdeck.sanitize import inert
from llmdeck.units import gib

# The first lines of a license say which one it is; the whole text follows further down.
LICENSE_PREVIEW_LINES = 3
VERDICTS = {
    "gpu": "every layer on the GPU",
    "partial": "some layers in system memory",
    "cpu": "runs on the CPU",
    "none": "does not fit in memory",
}
SOURCES = {
    "server": "the server's /api/show tensor table",
    "store": "the GGUF in the store",
    "catalog": "llmdeck's catalog",
}

Rows = list[tuple[str, str]]


class DetailsScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    DetailsScreen {
        align: center middle;
    }
    DetailsScreen > VerticalScroll {
        width: 100;
        max-width: 100%;
        height: 85%;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    DetailsScreen .details-heading {
        text-style: bold;
        margin-top: 1;
    }
    DetailsScreen #details-license {
        color: $text-muted;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,i,q", "close", "Close", id="details.close"),
    ]

    def __init__(
        self, ollama: OllamaService, name: str, fit: FitRow | None, loaded: RunningModel | None = None
    ) -> None:
        super().__init__()
        self.ollama = ollama
        self.model = name
        self.fit = fit
        self.loaded = loaded
        # /api/show's answer once read; None before (or when it failed).
        self.show: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = inert(self.model)
            box.border_subtitle = "Esc closes · ↑↓ scroll"
            yield Static("Model (Ollama, /api/show)", classes="details-heading")
            yield Static(Text("reading /api/show…"), id="details-facts")
            yield Static("Plan (llmdeck's estimate for this machine)", classes="details-heading")
            yield Static(_table(plan_rows(self.fit, self.loaded)), id="details-plan")
            yield Static("License", classes="details-heading", id="details-license-heading")
            yield Static("", id="details-license")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()  # so the arrows and page keys scroll it
        self._fetch()

    @work(exclusive=True, group="show", exit_on_error=False)
    async def _fetch(self) -> None:
        facts = self.query_one("#details-facts", Static)
        try:
            show = await self.ollama.show(self.model, verbose=False)
        except OllamaError as error:
            facts.update(Text(f"Ollama could not describe {inert(self.model)}: {error}"))
            return
        self.show = show
        facts.update(_table(model_rows(show)))
        license_text = license_of(show)
        self.query_one("#details-license", Static).update(
            Text(license_text) if license_text else Text("none in the model")
        )

    def action_close(self) -> None:
        self.dismiss(None)


def license_of(show: Mapping[str, Any]) -> str:
    """The license text (several licenses, as some models carry, one after the other)."""
    value = show.get("license")
    if isinstance(value, list):
        value = "\n\n".join(str(part) for part in value)
    return inert(str(value)).strip() if value else ""


def model_rows(show: Mapping[str, Any]) -> Rows:
    """What a user wants to know about a model, from `/api/show`; every value made inert."""
    info = show.get("model_info") or {}
    details = show.get("details") or {}
    if not isinstance(info, dict):
        info = {}
    if not isinstance(details, dict):
        details = {}
    arch = str(info.get("general.architecture") or details.get("family") or "")
    rows: Rows = [("architecture", arch or "not reported")]
    parameters = str(details.get("parameter_size") or "")
    count = info.get("general.parameter_count")
    if isinstance(count, int) and not isinstance(count, bool):
        parameters = f"{parameters} ({count:,})" if parameters else f"{count:,}"
    rows.append(("parameters", parameters or "not reported"))
    rows.append(("quantization", str(details.get("quantization_level") or "not reported")))
    context = info.get(f"{arch}.context_length") if arch else None
    trained = f"{context:,} tokens (the most it was trained for)" if isinstance(context, int) else ""
    rows.append(("context length", trained or "not reported"))
    capabilities = show.get("capabilities")
    if isinstance(capabilities, list) and capabilities:
        rows.append(("capabilities", ", ".join(str(item) for item in capabilities)))
    else:
        rows.append(("capabilities", "not reported (Ollama before 0.6.4 does not say)"))
    if details.get("format"):
        rows.append(("format", str(details["format"])))
    lines = [line.strip() for line in license_of(show).splitlines() if line.strip()]
    preview = "\n".join(lines[:LICENSE_PREVIEW_LINES])
    if len(lines) > LICENSE_PREVIEW_LINES:
        preview += " … (the whole text is below)"
    rows.append(("license", preview or "none in the model"))
    parameter_lines = [
        " ".join(line.split()) for line in str(show.get("parameters") or "").splitlines() if line.strip()
    ]
    rows.append(("Modelfile parameters", "\n".join(parameter_lines) or "none (Ollama's defaults)"))
    return [(label, inert(value)) for label, value in rows]


def plan_rows(fit: FitRow | None, loaded: RunningModel | None = None) -> Rows:
    if fit is None:
        rows: Rows = [("plan", "none yet: the model's facts are still being read, or could not be")]
    else:
        plan = fit.plan
        rows = [
            ("verdict", f"{plan.verdict}: {VERDICTS.get(plan.verdict, plan.verdict)}"),
            ("GPU layers (num_gpu)", f"{plan.num_gpu} of {plan.layers_total}"),
            ("size (memory)", f"{gib(plan.size)}, of which {gib(plan.size_vram)} in VRAM"),
            ("processor", plan.processor),
            ("context (num_ctx)", f"{plan.num_ctx:,} tokens"),
            ("KV cache", f"{gib(plan.kv_cache_bytes)} ({plan.kv_cache_type})"),
        ]
        if fit.tokens_per_s is None:
            rows.append(("speed", "no estimate"))
        elif fit.calibration is not None:
            rows.append(
                ("speed", f"{fit.tokens_per_s:.1f} tok/s (estimate corrected by replies measured here)")
            )
        else:
            rows.append(("speed", f"~{fit.tokens_per_s:.1f} tok/s estimated"))
        rows.append(("facts from", SOURCES.get(fit.spec.source, fit.spec.source)))
        if fit.spec.projector_bytes:
            placed = "on the first GPU before any layer"
            rows.append(("vision weights", f"{gib(fit.spec.projector_bytes)}, {placed}"))
        rows += [("note", note) for note in plan.notes]
    if loaded is not None:
        rows.append(
            ("loaded now (/api/ps)", f"{gib(loaded.size)}, {processor_split(loaded.size, loaded.size_vram)}")
        )
    return rows


def _table(rows: Rows) -> Text:
    width = max((len(label) for label, _ in rows), default=0) + 2
    text = Text()
    for index, (label, value) in enumerate(rows):
        if index:
            text.append("\n")
        text.append(label.ljust(width), style="bold")
        lines = value.splitlines() or [""]
        text.append(lines[0])
        for line in lines[1:]:
            text.append("\n" + " " * width + line)
    return text
