"""SVG snapshots pin the look of the main screen at a fixed terminal size."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import DATA, fast_settings, wait_until, widget_text
from ollama_standin import OllamaStandIn
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.widgets import Input

from llmdeck.hardware import HardwareSnapshot, StaticProbe
from llmdeck.model_cache import model_cache_path, save_seen
from llmdeck.ollama_api import InstalledModel, OllamaService
from llmdeck.ui.app import OfflineBanner, create_app
from llmdeck.ui.catalog_screen import CatalogScreen
from llmdeck.ui.hardware_pane import HardwarePane
from llmdeck.ui.key_footer import KeyFooter
from llmdeck.ui.models_pane import ModelsPane
from llmdeck.ui.recommendation import RecommendationLine
from llmdeck.ui.store_panel import StorePanel

SIZE = (120, 40)


@pytest.fixture(autouse=True)
def fixed_home(monkeypatch: pytest.MonkeyPatch) -> None:
    # The store panel shows the default store under HOME: a fixed path keeps the picture the
    # same from run to run. Nothing exists or is written there.
    monkeypatch.setenv("HOME", "/nonexistent/llmdeck-home")


async def steady(pilot: Pilot[Any]) -> None:
    pilot.app.query_one("#prompt", Input).cursor_blink = False
    # The hardware pane and the suggestions fill from thread workers; the snapshot must not race them.
    await wait_until(lambda: "RTX 4090" in widget_text(pilot.app.query_one(HardwarePane)))
    await wait_until(lambda: "Suggested" in widget_text(pilot.app.query_one(RecommendationLine)))
    await wait_until(lambda: pilot.app.query_one(StorePanel).report is not None)


def test_main_screen(snap_compare: Any, standin: OllamaStandIn, recorded_probe: StaticProbe) -> None:
    app = create_app(OllamaService(standin.url), recorded_probe, fast_settings(standin.url))

    async def ready(pilot: Pilot[Any]) -> None:
        await steady(pilot)
        models = app.query_one(ModelsPane)
        await wait_until(
            lambda: models.row_count == 4 and all(models.fit_of(n) for n in models.sorted_names())
        )
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_offline_banner(
    snap_compare: Any, recorded_probe: StaticProbe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The banner offers F5 when an `ollama` is on PATH: the picture must not depend on the machine.
    monkeypatch.setenv("PATH", str(tmp_path))
    # A fixed address, so the banner text is the same on every run; nothing listens on port 9.
    host = "http://127.0.0.1:9"
    app = create_app(OllamaService(host, connect_timeout_s=0.5), recorded_probe, fast_settings(host))

    async def offline(pilot: Pilot[Any]) -> None:
        await steady(pilot)
        await wait_until(lambda: app.query_one(OfflineBanner).has_class("shown"))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=offline)


class ReplayProbe:
    """Measured samples replayed in order; then it holds, so the history on screen is exactly them."""

    def __init__(self, samples: list[HardwareSnapshot]) -> None:
        self.samples = samples
        self.served = 0
        self._closed = threading.Event()
        # The app keeps only the newest of samples it has not drawn yet; here every one must be
        # drawn, so the next is served only once the previous one is on screen.
        self.drawn: Callable[[], int] = lambda: self.served

    def snapshot(self) -> HardwareSnapshot:
        deadline = time.monotonic() + 5
        while self.drawn() < self.served and time.monotonic() < deadline and not self._closed.is_set():
            time.sleep(0.005)
        if self.served >= len(self.samples):
            self._closed.wait()  # the sampler thread parks here until the app closes
            return self.samples[-1]
        self.served += 1
        return self.samples[self.served - 1]

    def close(self) -> None:
        self._closed.set()


def two_gpus_loading_a_model() -> list[HardwareSnapshot]:
    """A 70B model split across an RTX 3090 and an RTX 3060 loads, then decodes."""
    final = replace(HardwareSnapshot.load(DATA / "workstation-2gpus.json"), source="measured")
    samples = []
    desktop = 600 * 1024**2  # what the desktop holds before the model loads
    for step in range(18):
        share = min(1.0, step / 10)
        gpus = []
        for gpu in final.gpu.gpus:
            runner = int(share * (gpu.vram_used_bytes - desktop))
            # The runner is what fills the card, so free + runner (what plans count) stays the
            # same in every sample: the plans on screen do not depend on which sample came first.
            gpus.append(
                replace(
                    gpu,
                    vram_used_bytes=desktop + runner,
                    vram_free_bytes=gpu.vram_total_bytes - desktop - runner,
                    runner_vram_bytes=runner,
                    utilization_percent=0 if step < 10 else gpu.utilization_percent,
                )
            )
        cpu = replace(final.cpu, load_percent=float([5, 40, 85, 60][step % 4] if step < 10 else 12))
        samples.append(replace(final, cpu=cpu, gpu=replace(final.gpu, gpus=tuple(gpus))))
    return samples


def test_hardware_pane_with_two_gpus(snap_compare: Any, standin: OllamaStandIn) -> None:
    probe = ReplayProbe(two_gpus_loading_a_model())
    settings = replace(fast_settings(standin.url), hardware_refresh_s=0.02)
    app = create_app(OllamaService(standin.url), probe, settings)

    def drawn() -> int:
        try:
            return len(app.query_one(HardwarePane).gauges.cpu)
        except NoMatches:  # not composed yet
            return 0

    probe.drawn = drawn

    async def loaded(pilot: Pilot[Any]) -> None:
        await wait_until(lambda: probe.served == len(probe.samples))
        pane = app.query_one(HardwarePane)
        await wait_until(lambda: "RTX 3060" in widget_text(pane) and "no model loaded" in widget_text(pane))
        await wait_until(lambda: "Suggested" in widget_text(app.query_one(RecommendationLine)))
        await wait_until(lambda: app.query_one(StorePanel).report is not None)
        models = app.query_one(ModelsPane)
        await wait_until(
            lambda: models.row_count == 4 and all(models.fit_of(n) for n in models.sorted_names())
        )
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=loaded)


def test_main_screen_at_80x24(snap_compare: Any, standin: OllamaStandIn, recorded_probe: StaticProbe) -> None:
    # The smallest terminal llmdeck is meant to be used in: every model row, the prompt and the
    # status line are on screen; the store and the suggestion are below, a scroll away.
    app = create_app(OllamaService(standin.url), recorded_probe, fast_settings(standin.url))

    async def ready(pilot: Pilot[Any]) -> None:
        await steady(pilot)
        models = app.query_one(ModelsPane)
        await wait_until(
            lambda: models.row_count == 4 and all(models.fit_of(n) for n in models.sorted_names())
        )
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


def test_catalog(snap_compare: Any, standin: OllamaStandIn, recorded_probe: StaticProbe) -> None:
    app = create_app(OllamaService(standin.url), recorded_probe, fast_settings(standin.url))

    async def browsing(pilot: Pilot[Any]) -> None:
        await steady(pilot)
        app.query_one(ModelsPane).focus()
        # The footer under the catalog shows the keys of the list it was opened from.
        await wait_until(lambda: "Sort" in widget_text(app.query_one(KeyFooter)))
        await pilot.press("b", *"llama3.1")
        await wait_until(lambda: isinstance(app.screen, CatalogScreen) and len(app.screen.shown) < 60)
        app.screen.query_one(Input).cursor_blink = False
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=browsing)


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC: a date on screen must not depend on the machine's time zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("utc")
def test_models_seen_last_time_while_the_server_has_not_answered(
    snap_compare: Any, standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    seen_at = datetime(2025, 1, 2, 12, 0, tzinfo=UTC)  # not today: shown as its date
    gone = InstalledModel("mistral:7b", 4_113_301_824, "7.2B", "Q4_0", "llama", "f974a74358d6")
    kept = InstalledModel("llama3.1:8b", 4_920_753_328, "8.0B", "Q4_K_M", "llama", "46e0c10c039e")
    save_seen(model_cache_path(), standin.url, [gone, kept], now=seen_at)
    app = create_app(OllamaService(standin.url), recorded_probe, fast_settings(standin.url))

    async def waiting(pilot: Pilot[Any]) -> None:
        pilot.app.query_one("#prompt", Input).cursor_blink = False
        await wait_until(lambda: "RTX 4090" in widget_text(pilot.app.query_one(HardwarePane)))
        await wait_until(lambda: app.query_one(ModelsPane).row_count == 2)
        await pilot.pause()

    with standin.tags_held():
        assert snap_compare(app, terminal_size=SIZE, run_before=waiting)
