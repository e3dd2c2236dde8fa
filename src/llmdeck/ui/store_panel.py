"""Under the model list: where the models are stored, how llmdeck knows, and what is wrong there."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from llmdeck.sanitize import inert
from llmdeck.store.report import StoreReport
from llmdeck.units import GIB

LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


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

    def show(self, report: StoreReport) -> None:
        self.report = report
        decision = report.decision
        text = Text("Store ", style="bold")
        text.append(inert(str(decision.path)))
        if not report.contents.exists:
            text.append(" (does not exist)", style="red")
        elif report.free_bytes is not None:
            text.append(f" · {report.free_bytes / GIB:.0f} GiB free", style="dim")
        text.append(f"\n{inert(decision.how)}", style="dim")
        for finding in report.findings:
            text.append(f"\n{finding.level}: ", style=LEVEL_STYLE[finding.level])
            text.append(inert(finding.message))
        self.update(text)
