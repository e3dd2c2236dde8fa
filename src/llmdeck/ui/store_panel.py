"""Under the model list: where the models are stored, how llmdeck knows, and what is wrong there."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from llmdeck.sanitize import inert
from llmdeck.store.report import StoreReport
from llmdeck.ui.palette import Tone, follow_theme, tone
from llmdeck.units import GIB

LEVEL_TONE: dict[str, Tone] = {"error": "error", "warning": "warning"}


class StorePanel(Static):
    DEFAULT_CSS = """
    StorePanel {
        height: auto;
        max-height: 8;
        padding: 0 1;
        overflow-y: auto;
    }
    """

    report: StoreReport | None = None

    def on_mount(self) -> None:
        follow_theme(self, self._redraw)

    def _redraw(self) -> None:
        if self.report is not None:
            self.show(self.report)

    def show(self, report: StoreReport) -> None:
        self.report = report
        decision = report.decision
        text = Text("Store ", style="bold")
        text.append(inert(str(decision.path)))
        if not report.contents.exists:
            text.append(" (does not exist)", style=tone(self, "error"))
        elif report.free_bytes is not None:
            text.append(f" · {report.free_bytes / GIB:.0f} GiB free", style="dim")
        text.append(f"\n{inert(decision.how)}", style="dim")
        for finding in report.findings:
            level = LEVEL_TONE.get(finding.level)
            text.append(f"\n{finding.level}: ", style=f"bold {tone(self, level)}" if level else "dim")
            text.append(inert(finding.message))
        self.update(text)
