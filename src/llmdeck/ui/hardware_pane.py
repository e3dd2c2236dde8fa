"""The hardware pane: CPU, memory and every NVIDIA GPU, or why there is none."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from llmdeck.hardware import HardwareSnapshot
from llmdeck.units import gib


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

    def show(self, snapshot: HardwareSnapshot) -> None:
        self.border_subtitle = (
            "recorded snapshot" if snapshot.source == "recorded" else "measured: psutil, NVML"
        )
        self.update(render_snapshot(snapshot))

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
        line.append(f"\nutilisation {utilisation}", style="dim")
        table.add_row(f"GPU {gpu.index}", line)
    return table
