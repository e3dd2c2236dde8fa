"""The hardware pane: live gauges for CPU, memory and every GPU, and what Ollama has loaded.

It is redrawn on every sample (once a second by default), so drawing is kept cheap (measured:
a Static re-rendering all its lines cost 3 ms a frame, one widget per line more): one widget that
keeps each line as a ready strip and repaints only the lines whose text changed; no line ever
wraps; the screen is laid out again only when the number of lines changes (a GPU lost, a model
loaded).
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from rich.text import Text
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

from llmdeck.fit.planner import processor_split
from llmdeck.hardware import HardwareSnapshot
from llmdeck.hardware.snapshot import GpuInfo
from llmdeck.ollama_api import RunningModel
from llmdeck.sanitize import inert
from llmdeck.ui.palette import FALLBACK, Tone, follow_theme, tone
from llmdeck.ui.sparkline import History
from llmdeck.units import GIB, decimal_size, gib

HISTORY_LENGTH = 18  # samples per sparkline: 18 s at the default rate
LABEL_WIDTH = 7
VALUE_WIDTH = 13
REASON_WIDTH = 48  # fits the pane at its usual width
NARROWEST_WRAP = 12  # below this a note is unreadable anyway; textwrap needs a positive width
PLAIN_HTTP_NOTE = "plain HTTP: prompts and replies travel unencrypted"


class Gauges:
    """The short history behind each sparkline."""

    def __init__(self, length: int = HISTORY_LENGTH) -> None:
        self.length = length
        self.cpu = History(length)
        self.ram = History(length)
        self.vram: dict[int, History] = {}
        self.tokens = History(length)
        self.last_rate: float | None = None

    def add(self, snapshot: HardwareSnapshot) -> None:
        self.cpu.add(snapshot.cpu.load_percent)
        memory = snapshot.memory
        self.ram.add(memory.total_bytes - memory.available_bytes)
        seen = set()
        for gpu in snapshot.gpu.gpus:
            seen.add(gpu.index)
            self.vram.setdefault(gpu.index, History(self.length)).add(gpu.vram_used_bytes)
        for index in set(self.vram) - seen:
            del self.vram[index]

    def add_rate(self, rate: float | None) -> None:
        """A tokens/s reading while a reply streams; between replies the last trace stays."""
        self.tokens.add(rate)
        if rate is not None:
            self.last_rate = rate


class HardwarePane(Widget):
    DEFAULT_CSS = """
    HardwarePane {
        height: auto;
        border: round $primary 50%;
        border-title-color: $text;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Hardware"
        self.gauges = Gauges()
        self.snapshot: HardwareSnapshot | None = None
        self.running: list[RunningModel] | None = None
        self.streaming = False
        self.remote_host: str | None = None
        self._lines: list[Text] = [Text("probing the hardware…")]
        self._strips: list[Strip | None] = [None]
        self.tones: dict[Tone, str] = dict(FALLBACK)

    def on_mount(self) -> None:
        self._take_tones()
        follow_theme(self, self._theme_changed)

    def on_resize(self) -> None:
        # Notes are wrapped to the pane's width, which is known only once it is laid out and
        # changes with the terminal's.
        self._draw()

    def _take_tones(self) -> None:
        self.tones = {name: tone(self, name) for name in FALLBACK}

    def _theme_changed(self) -> None:
        self._take_tones()
        if self.snapshot is None:
            self._strips = [None] * len(self._lines)  # a message, not gauges: keep it, repaint it
            self.refresh()
            return
        self._lines, self._strips = [], []  # every line is built again in the new colours
        self._draw()

    def show(self, snapshot: HardwareSnapshot, *, streaming: bool = False, rate: float | None = None) -> None:
        self.snapshot = snapshot
        self.streaming = streaming
        self.gauges.add(snapshot)
        if streaming:
            self.gauges.add_rate(rate)
        subtitle = "recorded snapshot" if snapshot.source == "recorded" else "measured: psutil, NVML"
        if self.border_subtitle != subtitle:  # setting it repaints, even to the same text
            self.border_subtitle = subtitle
        self._draw()

    def show_running(self, models: list[RunningModel] | None) -> None:
        """Ollama's loaded models (`/api/ps`), or None while the server is not reachable."""
        self.running = models
        self._draw()

    def show_remote(self, host: str | None) -> None:
        """The server runs on another machine: the gauges are not of the machine running models,
        and over `http://` everything typed and answered crosses the network readable."""
        self.remote_host = host
        self._draw()

    def show_failure(self, reason: str) -> None:
        self._show_lines([Text(f"hardware probe failed: {inert(reason)}", style="bold red")])

    def _draw(self) -> None:
        if self.snapshot is None:
            return
        now = datetime.now(UTC)
        width = self.size.width or None  # not laid out yet: the usual width until it is
        self._show_lines(
            gauge_lines(
                self.snapshot,
                self.gauges,
                self.running,
                now,
                self.remote_host,
                self.streaming,
                self.tones,
                width,
            )
        )

    def _show_lines(self, lines: list[Text]) -> None:
        if len(lines) != len(self._lines):
            self._lines, self._strips = lines, [None] * len(lines)
            self.refresh(layout=True)  # the pane grows or shrinks
            return
        width = self.size.width
        for y, (line, shown) in enumerate(zip(lines, self._lines, strict=True)):
            if line != shown:  # an unchanged line is not rendered or repainted again
                self._lines[y], self._strips[y] = line, None
                self.refresh(Region(0, y, width, 1))

    @property
    def text(self) -> str:
        """What the pane shows, as plain text."""
        return "\n".join(line.plain for line in self._lines)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        # Textual works the style out from every ancestor's styles at each call: once a line.
        style = self.rich_style
        if y >= len(self._lines):
            return Strip.blank(width, style)
        strip = self._strips[y]
        if strip is None:
            segments = self._lines[y].render(self.app.console, end="")
            strip = self._strips[y] = Strip(segments).apply_style(style)
        return strip.crop_extend(0, width, style)

    def notify_style_update(self) -> None:
        # A new theme changes the base style baked into each strip.
        super().notify_style_update()
        self._strips = [None] * len(self._lines)


def render_gauges(
    snapshot: HardwareSnapshot,
    gauges: Gauges,
    running: list[RunningModel] | None,
    now: datetime,
    remote_host: str | None = None,
    streaming: bool = False,
) -> Text:
    """The pane as one text (for tests and printing)."""
    return Text("\n").join(gauge_lines(snapshot, gauges, running, now, remote_host, streaming, FALLBACK))


def gauge_lines(
    snapshot: HardwareSnapshot,
    gauges: Gauges,
    running: list[RunningModel] | None,
    now: datetime,
    remote_host: str | None = None,
    streaming: bool = False,
    tones: Mapping[Tone, str] = FALLBACK,
    width: int | None = None,
) -> list[Text]:
    """One text per screen line; none wraps. `tones` are the theme's colours; `width` is the
    pane's inner width, to which notes are broken (None: the pane's usual width)."""
    wrap = REASON_WIDTH if width is None else max(NARROWEST_WRAP, width - LABEL_WIDTH)
    lines: list[Text] = []
    if remote_host:
        lines.extend(_notes("Note", remote_notes(remote_host), wrap, tones["warning"]))
    spark = tones["primary"]
    lines.extend(_cpu_lines(snapshot, gauges, spark))
    lines.extend(_memory_lines(snapshot, gauges, spark))
    lines.extend(_gpu_lines(snapshot, gauges, spark, tones["warning"], wrap))
    lines.append(_rate_line(gauges, streaming, spark))
    if running is not None:
        for index, line in enumerate(render_running(running, now).split("\n")):
            lines.append(_line("Ollama" if index == 0 else "", line))
    return lines


def remote_notes(host: str) -> list[str]:
    """What the user must know about a server on another machine."""
    notes = [f"Ollama runs on {inert(host)}", "these gauges show this machine, not that one"]
    # https is encrypted; any other address llmdeck accepts has been given `http://`.
    if urlsplit(host).scheme.lower() != "https":
        notes.append(PLAIN_HTTP_NOTE)
    return notes


def _notes(label: str, notes: list[str], wrap: int, style: str) -> list[Text]:
    """Each note on lines of its own, broken where words are (a line never wraps on screen, so
    a note cut at the pane's edge would lose its end)."""
    parts = [part for note in notes for part in _wrapped(note, wrap)]
    return [_line(label if index == 0 else "", Text(part, style=style)) for index, part in enumerate(parts)]


@functools.lru_cache(maxsize=64)
def _wrapped(note: str, width: int) -> tuple[str, ...]:
    # The same notes are drawn at every sample; breaking them is a tenth of building the pane.
    return tuple(textwrap.wrap(note, width))


def _line(label: str, body: Text | str) -> Text:
    line = Text()
    line.append(f"{label:<{LABEL_WIDTH}}", style="bold")  # a span: the body keeps its own weight
    line.append_text(body if isinstance(body, Text) else Text(body))
    return line


def _gauge(value: str, spark: str, tail: str = "", colour: str = FALLBACK["primary"]) -> Text:
    text = Text(f"{value:<{VALUE_WIDTH}} ")
    text.append(spark, style=colour)
    if tail:
        text.append(f" {tail}", style="dim")
    return text


def _cpu_lines(snapshot: HardwareSnapshot, gauges: Gauges, colour: str) -> list[Text]:
    cpu = snapshot.cpu
    cores = ""
    if cpu.physical_cores and cpu.logical_cores:
        cores = f"{cpu.physical_cores}C/{cpu.logical_cores}T"  # as spec sheets write cores/threads
    elif cpu.physical_cores or cpu.logical_cores:
        cores = f"{cpu.physical_cores or cpu.logical_cores} cores"
    lines = [_line("CPU", Text(inert(cpu.model)))]
    if snapshot.source == "measured" and cpu.load_percent is not None:
        load = _gauge(f"load {cpu.load_percent:3.0f}%", gauges.cpu.draw(100), cores, colour)
        lines.append(_line("", load))
    elif cores:
        lines.append(_line("", Text(cores, style="dim")))
    return lines


def _memory_lines(snapshot: HardwareSnapshot, gauges: Gauges, colour: str) -> list[Text]:
    memory = snapshot.memory
    used = memory.total_bytes - memory.available_bytes
    spark = gauges.ram.draw(memory.total_bytes) if snapshot.source == "measured" else ""
    free = f"{gib(memory.available_bytes)} free"
    lines = [_line("RAM", _gauge(_used_of(used, memory.total_bytes), spark, free, colour))]
    if memory.swap_total_bytes:
        swap_used = memory.swap_total_bytes - memory.swap_free_bytes
        lines.append(_line("Swap", _used_of(swap_used, memory.swap_total_bytes)))
    else:
        lines.append(_line("Swap", Text("none", style="dim")))
    return lines


def _gpu_lines(
    snapshot: HardwareSnapshot, gauges: Gauges, colour: str, warning: str, wrap: int = REASON_WIDTH
) -> list[Text]:
    report = snapshot.gpu
    lines: list[Text] = []
    if report.unified is not None:
        unified = report.unified
        lines.append(_line("GPU", f"{inert(unified.chip or 'Apple GPU')} · unified memory"))
        wired = f" · {gib(unified.wired_bytes)} wired now" if unified.wired_bytes is not None else ""
        share = f"may use {gib(unified.gpu_limit_bytes)} of {gib(snapshot.memory.total_bytes)}{wired}"
        lines.append(_line("", share))
        lines.append(_line("", Text(f"limit: {unified.limit_source}", style="dim")))
        return lines
    if not report.gpus:
        reason = f"{report.unavailable_reason or 'no GPU found'}; the gauges show RAM and CPU"
        return _notes("GPU", [inert(reason)], wrap, warning)
    for gpu in report.gpus:
        lines.append(_line(f"GPU {gpu.index}", inert(gpu.name)))
        history = gauges.vram.get(gpu.index)
        spark = history.draw(gpu.vram_total_bytes) if history and snapshot.source == "measured" else ""
        used = _used_of(gpu.vram_used_bytes, gpu.vram_total_bytes)
        lines.append(_line("VRAM", _gauge(used, spark, f"{gib(gpu.vram_free_bytes)} free", colour)))
        lines.append(_line("", Text(_gpu_details(gpu), style="dim")))
    return lines


def _gpu_details(gpu: GpuInfo) -> str:
    utilisation = "n/a" if gpu.utilization_percent is None else f"{gpu.utilization_percent}%"
    details = [f"util {utilisation}"]
    if gpu.temperature_c is not None:
        details.append(f"{gpu.temperature_c} °C")
    if gpu.power_w is not None:
        details.append(f"{gpu.power_w:.0f} W")
    if gpu.runner_vram_bytes:
        details.append(f"Ollama uses {gib(gpu.runner_vram_bytes)}")
    return " · ".join(details)


def _rate_line(gauges: Gauges, streaming: bool, colour: str) -> Text:
    if gauges.last_rate is None:
        return _line("tok/s", Text("no reply yet", style="dim"))
    value = f"{gauges.last_rate:.1f}"
    return _line("tok/s", _gauge(value, gauges.tokens.draw(), "now" if streaming else "last reply", colour))


def _used_of(used: int, total: int) -> str:
    return f"{used / GIB:.1f}/{total / GIB:.1f} GiB"


def render_running(models: list[RunningModel], now: datetime) -> Text:
    """Two lines per loaded model: the split exactly as `ollama ps` prints it, then its context
    and time left (one line would not fit the pane beside a long model name)."""
    if not models:
        return Text("no model loaded", style="dim")
    text = Text()
    for index, model in enumerate(models):
        if index:
            text.append("\n")
        text.append(inert(model.name), style="bold")
        text.append(f" {decimal_size(model.size)} {processor_split(model.size, model.size_vram)}\n")
        context = f"ctx {model.context_length}, " if model.context_length else ""
        text.append(f"{context}{until(model.expires_at, now)}", style="dim")
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
