"""Pull a model: a name (typed, or one of the catalog's suggestions), then its download's progress.

Esc while pulling closes the stream, which cancels the download in Ollama; Esc again closes the
screen. The screen closes by itself with the model's name once Ollama says "success".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from contextlib import aclosing
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from llmdeck.fit.catalog import installed_matcher
from llmdeck.fit.pick import Recommendations
from llmdeck.fit.report import FitRow
from llmdeck.ollama_api import ModelNotFound, OllamaError, OllamaResponseError, OllamaService
from llmdeck.pull_progress import PullMeter, explain_pull_error
from llmdeck.sanitize import inert
from llmdeck.units import GIB

# Ollama sends a progress line per chunk, hundreds a second on a fast link: the screen is
# redrawn on a timer instead, ten times a second at most.
REDRAW_INTERVAL_S = 0.1


class PullScreen(ModalScreen[str | None]):
    """Dismissed with the model's name after a successful pull, None otherwise."""

    DEFAULT_CSS = """
    PullScreen {
        align: center middle;
    }
    PullScreen > Vertical {
        width: 84;
        max-width: 100%;
        height: auto;
        max-height: 90%;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    PullScreen #pull-hint {
        color: $text-muted;
    }
    PullScreen #pull-suggestions {
        height: auto;
        max-height: 6;
        margin-bottom: 1;
    }
    PullScreen #pull-progress {
        margin-top: 1;
    }
    PullScreen #pull-status {
        height: auto;
    }
    PullScreen #pull-status.error {
        color: $error;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel pull / close", id="pull.cancel"),
    ]

    def __init__(
        self,
        ollama: OllamaService,
        recommendations: Recommendations | None,
        name: str | None = None,
        installed: Collection[str] = (),
    ) -> None:
        super().__init__()
        self.ollama = ollama
        self.suggestions = _suggestions(recommendations)
        # Suggestions come from the catalog's plans, so the catalog has loaded when there are any;
        # without them (planning not done, or failed) a pull never needs it.
        self.is_installed = installed_matcher(installed) if self.suggestions else set(installed).__contains__
        fresh = [row.spec.name for _, row in self.suggestions if not self.is_installed(row.spec.name)]
        self.initial = name if name is not None else (fresh[0] if fresh else "")
        # The model being pulled now; None between pulls.
        self.pulling: str | None = None
        self._meter: PullMeter | None = None

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Pull a model"
            box.border_subtitle = "Enter pulls · Esc cancels / closes"
            yield Static(
                Text(
                    "The name as the Ollama library spells it (ollama.com/library), e.g. llama3.2:3b."
                    " b in the model list shows every model and quant with its fit here."
                ),
                id="pull-hint",
            )
            yield Input(value=self.initial, placeholder="model name, e.g. qwen2.5:14b", id="pull-name")
            if self.suggestions:
                yield OptionList(
                    *[self._option(label, row) for label, row in self.suggestions], id="pull-suggestions"
                )
            yield ProgressBar(total=None, show_eta=False, id="pull-progress")
            yield Static("", id="pull-status")

    def _option(self, label: str, row: FitRow) -> Option:
        text = Text(f"{label}: ")
        text.append(row.spec.name, style="bold")
        speed = f", ~{row.tokens_per_s:.0f} tok/s" if row.tokens_per_s else ""
        text.append(f" ({row.plan.size / GIB:.1f} GiB{speed})")
        if self.is_installed(row.spec.name):
            text.append(" · installed")
        return Option(text, id=row.spec.name)

    def on_mount(self) -> None:
        self._redraw_timer = self.set_interval(REDRAW_INTERVAL_S, self._redraw, pause=True)
        self.query_one("#pull-name", Input).focus()

    @on(OptionList.OptionSelected, "#pull-suggestions")
    def _suggestion_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option_id is None or self.pulling is not None:
            return
        field = self.query_one("#pull-name", Input)
        field.value = event.option_id
        field.cursor_position = len(field.value)
        field.focus()  # Enter there pulls it: a download of gigabytes is not one keypress away

    @on(Input.Submitted, "#pull-name")
    def _name_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        name = event.value.strip()
        if self.pulling is not None:
            return
        if not name:
            self._say(Text("Type the name of a model to pull."), error=True)
            return
        self._pull(name)

    def action_cancel(self) -> None:
        if self.pulling is not None:
            self.workers.cancel_group(self, "pull")
            return
        self.dismiss(None)

    @work(group="pull", exclusive=True, exit_on_error=False)
    async def _pull(self, name: str) -> None:
        meter = PullMeter()
        self._meter = meter
        self.pulling = name
        self.query_one("#pull-name", Input).disabled = True
        self.query_one("#pull-progress", ProgressBar).update(total=None, progress=0)
        self._say(Text(f"pulling {inert(name)}…"))
        self._redraw_timer.resume()
        try:
            async with aclosing(self.ollama.pull(name)) as lines:
                async for line in lines:
                    meter.feed(line)
        except asyncio.CancelledError:
            with contextlib.suppress(NoMatches):
                self._stopped()
                self._say(
                    Text(
                        f"pull of {inert(name)} cancelled: Ollama stopped downloading it and keeps the "
                        "part it has for the next pull. Esc closes."
                    )
                )
            raise
        except OllamaError as error:
            self._stopped()
            self._say(Text(f"pull of {inert(name)} failed: {_explain(name, error)}"), error=True)
            return
        self._stopped()
        self._redraw()
        self.dismiss(name)

    def _stopped(self) -> None:
        self.pulling = None
        self._redraw_timer.pause()
        field = self.query_one("#pull-name", Input)
        field.disabled = False
        field.focus()

    def _redraw(self) -> None:
        meter = self._meter
        if meter is None:
            return
        total = meter.total
        bar = self.query_one("#pull-progress", ProgressBar)
        bar.update(total=total if total > 0 else None, progress=meter.completed)
        name = inert(self.pulling or "")
        self._say(Text(f"{name} · {meter.describe()}" if name else meter.describe()))

    def _say(self, text: Text, *, error: bool = False) -> None:
        status = self.query_one("#pull-status", Static)
        status.update(text)
        status.set_class(error, "error")


def _explain(name: str, error: OllamaError) -> str:
    # Ollama's words are about the registry only when Ollama itself answered; "connection
    # refused" from llmdeck's own connection to Ollama is not a registry problem.
    if isinstance(error, ModelNotFound):
        return explain_pull_error(name, error.server_message or "not found")
    if isinstance(error, OllamaResponseError):
        return explain_pull_error(name, error.message)
    return str(error)


def _suggestions(recommendations: Recommendations | None) -> list[tuple[str, FitRow]]:
    if recommendations is None:
        return []
    rows = [("all on GPU", recommendations.full_gpu), ("partly on GPU", recommendations.partial)]
    chosen: list[tuple[str, FitRow]] = []
    for label, row in rows:
        if row is not None and all(row.spec.name != seen.spec.name for _, seen in chosen):
            chosen.append((label, row))
    return chosen
