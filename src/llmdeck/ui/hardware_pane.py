"""The hardware pane: CPU, memory and every NVIDIA GPU, or why there is none."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from llmdeck.fit.planner import processor_split
from llmdeck.hardware import HardwareSnapshot
from llmdeck.ollama_api import RunningModel
from llmdeck.sanitize import inert
from llmdeck.units import decimal_size, gib


class HardwarePane(Static):
    DEFAULT_CSS = """
    HardwarePane {
        height: auto;
        border: round $primary 50%;
        border-title-color: $text;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("probing the hardware…", id=id)
        self.border_title = "Hardware"

    snapshot: HardwareSnapshot | None = None
    running: list[RunningModel] | None = None

    def show(self, snapshot: HardwareSnapshot) -> None:
        self.snapshot = snapshot
        self.border_subtitle = (
            "recorded snapshot" if snapshot.source == "recorded" else "measured: psutil, NVML"
        )
        self._draw()

    def show_running(self, models: list[RunningModel] | None) -> None:
        """Ollama's loaded models (`/api/ps`), or None while the server is not reachable."""
        self.running = models
        self._draw()

    def _draw(self) -> None:
        if self.snapshot is None:
            return
        table = render_snapshot(self.snapshot)
        if self.running is not None:
            table.add_row("Ollama", render_running(self.running, datetime.now(UTC)))
        self.update(table)

    def show_failure(self, reason: str) -> None:
        self.update(Text(f"hardware probe failed: {reason}", style="bold red"))


def render_snapshot(snapshot: HardwareSnapshot) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()

    cpu = snapshot.cpu
    cores = []
    if cpu.physical_cores:
        cores.append(f"{cpu.physical_cores} cores")
    if cpu.logical_cores:
        cores.append(f"{cpu.logical_cores} threads")
    cpu_line = Text(cpu.model)
    details = ", ".join(cores)
    if cpu.load_percent is not None and snapshot.source == "measured":
        details += f", load {cpu.load_percent:.0f}%"
    if details:
        cpu_line.append(f"\n{details}", style="dim")
    table.add_row("CPU", cpu_line)

    memory = snapshot.memory
    table.add_row("RAM", f"{gib(memory.available_bytes)} free of {gib(memory.total_bytes)}")
    if memory.swap_total_bytes:
        table.add_row("Swap", f"{gib(memory.swap_free_bytes)} free of {gib(memory.swap_total_bytes)}")
    else:
        table.add_row("Swap", Text("none", style="dim"))

    report = snapshot.gpu
    if not report.gpus:
        table.add_row("GPU", Text(report.unavailable_reason or "no GPU found", style="yellow"))
    for gpu in report.gpus:
        line = Text(gpu.name)
        line.append(
            f"\nVRAM {gib(gpu.vram_free_bytes)} free of {gib(gpu.vram_total_bytes)}"
            f" ({gib(gpu.vram_used_bytes)} used)"
        )
        utilisation = "n/a" if gpu.utilization_percent is None else f"{gpu.utilization_percent}%"
        extras = [f"utilisation {utilisation}"]
        if gpu.temperature_c is not None:
            extras.append(f"{gpu.temperature_c} °C")
        if gpu.power_w is not None:
            extras.append(f"{gpu.power_w:.0f} W")
        line.append("\n" + " · ".join(extras), style="dim")
        if gpu.runner_vram_bytes:
            line.append(f"\nOllama's runner holds {gib(gpu.runner_vram_bytes)}")
        table.add_row(f"GPU {gpu.index}", line)
    return table


def render_running(models: list[RunningModel], now: datetime) -> Text:
    """One line per loaded model, the split exactly as `ollama ps` prints it."""
    if not models:
        return Text("no model loaded", style="dim")
    text = Text()
    for index, model in enumerate(models):
        if index:
            text.append("\n")
        text.append(inert(model.name), style="bold")
        split = processor_split(model.size, model.size_vram)
        context = f", ctx {model.context_length}" if model.context_length else ""
        text.append(f" {decimal_size(model.size)} {split}{context}")
        text.append(f", {until(model.expires_at, now)}", style="dim")
    return text


def until(expires: datetime | None, now: datetime) -> str:
    """As `ollama ps` says it: "Forever", "Stopping...", or the time left."""
    if expires is None:
        return "stays loaded"
    left = (expires - now).total_seconds()
    if left > 20 * 365 * 24 * 3600:
        return "stays loaded (forever)"
    if left <= 0:
        return "stopping"
    minutes, seconds = divmod(int(left), 60)
    return f"unloads in {minutes}:{seconds:02d}"
