"""One line under the model list: what the catalog suggests pulling for this machine."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from llmdeck.fit.pick import Recommendations
from llmdeck.fit.report import FitRow
from llmdeck.sanitize import inert
from llmdeck.units import GIB


class RecommendationLine(Static):
    DEFAULT_CSS = """
    RecommendationLine {
        height: auto;
        padding: 0 1;
        color: $text-muted;
    }
    """

    def show(self, recommendations: Recommendations) -> None:
        text = Text("Suggested ", style="bold")
        # Not dim: the widget is muted already, and dim on muted is unreadable on a light theme.
        text.append("(largest from the catalog that runs here)\n")
        text.append_text(_describe("all on GPU", recommendations.full_gpu))
        text.append("\n")
        text.append_text(_describe("partly on GPU", recommendations.partial))
        self.update(text)

    def show_failure(self, reason: str) -> None:
        text = Text("Suggested ", style="bold")
        text.append(f"none: planning the catalog failed ({inert(reason)})")
        self.update(text)


def _describe(label: str, row: FitRow | None) -> Text:
    if row is None:
        return Text(f"{label}: none")
    speed = f", ~{row.tokens_per_s:.0f} tok/s" if row.tokens_per_s else ""
    line = Text(f"{label}: ")
    line.append(row.spec.name, style="bold")
    line.append(f" ({row.plan.size / GIB:.1f} GiB{speed})")
    return line
