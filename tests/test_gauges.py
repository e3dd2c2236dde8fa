"""Live gauges: the sampler against recorded NVML sequences, sparklines, and the hardware pane."""

from __future__ import annotations

import io
import threading
from dataclasses import replace
from datetime import UTC, datetime

from helpers import DATA, fast_settings, press_now, type_text, wait_until, widget_text
from nvml_recordings import MIB, RecordedDevice, RecordedSequence
from ollama_standin import OllamaStandIn
from rich.console import Console

from llmdeck.config import Settings
from llmdeck.hardware import HardwareSnapshot, SystemProbe
from llmdeck.hardware.nvml import GPU_IS_LOST, MemoryReading, NvmlFailure, read_gpus
from llmdeck.ollama_api import OllamaService
from llmdeck.ui.app import LlmdeckApp, create_app
from llmdeck.ui.hardware_pane import Gauges, HardwarePane, render_gauges
from llmdeck.ui.models_pane import ModelsPane
from llmdeck.ui.sparkline import History, sparkline

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RTX_4090_MIB = 24564


def rtx_4090(
    used_gib: float, utilisation: int, processes: list[tuple[int, int | None]] | None = None
) -> RecordedDevice:
    used = int(used_gib * 1024) * MIB
    total = RTX_4090_MIB * MIB
    return RecordedDevice(
        "NVIDIA GeForce RTX 4090",
        MemoryReading(total=total, used=used, free=total - used),
        utilisation,
        processes=processes or [],
    )


def quick(settings: Settings) -> Settings:
    return replace(settings, hardware_refresh_s=0.05)


def pane_text(app: LlmdeckApp) -> str:
    return widget_text(app.query_one(HardwarePane))


def line_with(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


def test_a_sparkline_scales_to_a_fixed_ceiling_and_shows_gaps() -> None:
    assert sparkline([0, 50, 100], maximum=100) == "▁▅█"
    assert sparkline([200], maximum=100) == "█"  # never past the top
    assert sparkline([None, 1.0]) == " █"  # no reading: a gap, not a zero
    assert sparkline([0.0, 0.0]) == "▁▁"
    assert sparkline([]) == ""


def test_a_history_keeps_the_newest_samples_at_a_fixed_width() -> None:
    history = History(4)
    history.add(3.0)
    assert history.draw() == "   █"  # right-aligned, so the text after it does not move
    for value in (1.0, 2.0, 3.0, 4.0, 8.0):
        history.add(value)
    assert list(history) == [2.0, 3.0, 4.0, 8.0]
    assert history.draw(maximum=8.0) == "▃▄▅█"


async def test_vram_filling_is_drawn_live_from_the_sampler(standin: OllamaStandIn) -> None:
    loading = RecordedSequence([[rtx_4090(1, 2)], [rtx_4090(6, 40)], [rtx_4090(12, 95)], [rtx_4090(18, 97)]])
    app = create_app(OllamaService(standin.url), SystemProbe(nvml=loading), quick(fast_settings(standin.url)))
    async with app.run_test(size=(120, 40)):
        await wait_until(lambda: "18.0/24.0 GiB" in pane_text(app))
        vram = line_with(pane_text(app), "VRAM")
        # One bar per sample drawn, against the card's 24 GiB: empty, a quarter, half, three
        # quarters. A busy screen may skip a sample (only the newest waiting one is drawn), so the
        # bars must rise in that order, whichever were drawn.
        bars = "".join(c for c in vram.split("GiB")[1] if c in "▁▂▃▄▅▆▇█")
        assert bars.rstrip("▆") and set(bars.rstrip("▆")) <= set("▁▃▅")
        assert list(bars) == sorted(bars)
        assert "6.0 GiB free" in vram
        assert "util 97%" in pane_text(app)
        assert app.query_one(HardwarePane).border_subtitle == "measured: psutil, NVML"


async def test_a_gpu_lost_mid_run_says_why_and_the_app_runs_on(standin: OllamaStandIn) -> None:
    lost = RecordedSequence([[rtx_4090(4, 10)], [rtx_4090(4, 10)], NvmlFailure(GPU_IS_LOST, "GPU is lost")])
    app = create_app(OllamaService(standin.url), SystemProbe(nvml=lost), quick(fast_settings(standin.url)))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: "NVIDIA GPU lost" in pane_text(app))
        text = pane_text(app)
        assert "VRAM" not in text
        assert "the gauges show RAM and CPU" in " ".join(text.split())
        assert "GiB free" in line_with(text, "RAM")
        # Still a working app: the models arrive and keys do what they say.
        models = app.query_one(ModelsPane)
        await wait_until(lambda: models.row_count == 4)
        await pilot.press("f2")
        assert models.has_focus


def test_per_process_memory_the_driver_does_not_report_is_not_shown_as_zero() -> None:
    runner = frozenset({4242})
    unknown = RecordedSequence([[rtx_4090(9, 90, processes=[(4242, None)])]])
    snapshot = HardwareSnapshot(
        cpu=HardwareSnapshot.load(DATA / "workstation-rtx4090.json").cpu,
        memory=HardwareSnapshot.load(DATA / "workstation-rtx4090.json").memory,
        gpu=read_gpus(unknown, lambda: runner),
    )
    assert snapshot.gpu.gpus[0].runner_vram_bytes is None
    shown = _printed(render_gauges(snapshot, Gauges(), None, NOW))
    assert "runner" not in shown
    known = RecordedSequence([[rtx_4090(9, 90, processes=[(4242, 8 * 1024 * MIB)])]])
    snapshot = replace(snapshot, gpu=read_gpus(known, lambda: runner))
    assert "Ollama uses 8.0 GiB" in _printed(render_gauges(snapshot, Gauges(), None, NOW))


def test_two_gpus_each_get_their_gauges() -> None:
    snapshot = HardwareSnapshot.load(DATA / "workstation-2gpus.json")
    gauges = Gauges()
    measured = replace(snapshot, source="measured")
    for _ in range(3):
        gauges.add(measured)
    shown = _printed(render_gauges(measured, gauges, [], NOW))
    assert "GPU 0  NVIDIA GeForce RTX 3090" in shown
    assert "GPU 1  NVIDIA GeForce RTX 3060" in shown
    assert shown.count("VRAM") == 2
    assert "no model loaded" in shown


def test_apple_silicon_shows_the_gpu_share_of_unified_memory() -> None:
    mac = HardwareSnapshot.load(DATA / "macbook-m2pro.json")
    assert mac.gpu.unified is not None
    shown = _printed(render_gauges(mac, Gauges(), None, NOW))
    assert "unified memory" in shown
    limit = mac.gpu.unified.gpu_limit_bytes / 1024**3
    assert f"may use {limit:.1f} GiB of {mac.memory.total_bytes / 1024**3:.1f} GiB" in shown
    assert "NVIDIA" not in shown


def test_a_remote_server_is_named_above_the_gauges() -> None:
    snapshot = HardwareSnapshot.load(DATA / "workstation-rtx4090.json")
    shown = _printed(render_gauges(snapshot, Gauges(), None, NOW, remote_host="http://gpubox:11434"))
    assert [line.rstrip() for line in shown.splitlines()[:2]] == [
        "Note   Ollama runs on http://gpubox:11434",
        "       these gauges show this machine, not that one",
    ]


async def test_the_pane_says_so_when_ollama_runs_elsewhere(standin: OllamaStandIn) -> None:
    probe = SystemProbe(nvml=RecordedSequence([[rtx_4090(1, 0)]]))
    app = create_app(
        OllamaService(standin.url), probe, quick(fast_settings(standin.url)), is_local=lambda host: False
    )
    async with app.run_test(size=(120, 40)):
        await wait_until(lambda: "these gauges show this machine" in pane_text(app))
        assert f"Ollama runs on {standin.url}" in pane_text(app)


async def test_tokens_per_second_are_drawn_while_a_reply_streams(standin: OllamaStandIn) -> None:
    from ollama_standin import Reply

    from llmdeck.ui.chat_pane import ChatPane

    standin.default_reply = Reply(token_delay_s=0.02)
    probe = SystemProbe(nvml=RecordedSequence([[rtx_4090(1, 0)]]))
    app = create_app(OllamaService(standin.url), probe, quick(fast_settings(standin.url)))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: "no reply yet" in pane_text(app))
        await wait_until(lambda: app.query_one(ModelsPane).row_count == 4)
        await type_text(pilot, "hi")
        await press_now(pilot, "enter")
        chat = app.query_one(ChatPane)
        await wait_until(lambda: "now" in line_with(pane_text(app), "tok/s"))
        await wait_until(lambda: not chat.streaming)
        await wait_until(lambda: "last reply" in line_with(pane_text(app), "tok/s"))
        rate = line_with(pane_text(app), "tok/s").split()[2]
        assert 10 < float(rate) < 200  # 20 ms between tokens, give or take the machine


def _printed(renderable: object) -> str:
    console = Console(width=120, file=io.StringIO())
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


class BrokenProbe:
    """Fails once, then hangs until closed: the failure is said exactly once."""

    def __init__(self) -> None:
        self.failed = False
        self.closed = threading.Event()

    def snapshot(self) -> HardwareSnapshot:
        if self.failed:
            self.closed.wait()
            raise OSError(5, "closed")
        self.failed = True
        raise OSError(5, "Input/output error")

    def close(self) -> None:
        self.closed.set()


async def test_a_failed_probe_is_said_and_stays_said_across_a_theme_change(standin: OllamaStandIn) -> None:
    app = create_app(OllamaService(standin.url), BrokenProbe(), quick(fast_settings(standin.url)))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: "hardware probe failed: OSError" in pane_text(app))
        await pilot.press("f4")
        await pilot.pause()
        assert "hardware probe failed: OSError" in pane_text(app)
