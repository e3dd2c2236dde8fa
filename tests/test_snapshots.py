"""SVG snapshots pin the look of the main screen at a fixed terminal size."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import fast_settings, wait_until, widget_text
from ollama_standin import OllamaStandIn
from textual.pilot import Pilot
from textual.widgets import Input

from llmdeck.hardware import StaticProbe
from llmdeck.ollama_api import OllamaService
from llmdeck.ui.app import OfflineBanner, create_app
from llmdeck.ui.hardware_pane import HardwarePane
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


def test_offline_banner(snap_compare: Any, recorded_probe: StaticProbe) -> None:
    # A fixed address, so the banner text is the same on every run; nothing listens on port 9.
    host = "http://127.0.0.1:9"
    app = create_app(OllamaService(host, connect_timeout_s=0.5), recorded_probe, fast_settings(host))

    async def offline(pilot: Pilot[Any]) -> None:
        await steady(pilot)
        await wait_until(lambda: app.query_one(OfflineBanner).has_class("shown"))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=offline)
