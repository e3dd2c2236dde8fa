"""What Ollama has loaded, shown as `ollama ps` shows it, and unloading from the models pane."""

from __future__ import annotations

import io
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from helpers import fast_settings, press_now, type_text, wait_until, widget_text
from ollama_standin import OllamaStandIn, Reply
from rich.console import Console

from llmdeck.hardware import HardwareSnapshot, StaticProbe
from llmdeck.ollama_api import OllamaService, RunningModel
from llmdeck.ui.app import create_app
from llmdeck.ui.chat_pane import ChatPane
from llmdeck.ui.hardware_pane import Gauges, HardwarePane, render_gauges, render_running, until
from llmdeck.ui.models_pane import ModelsPane

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_time_left_as_ollama_ps_says_it() -> None:
    assert until(NOW + timedelta(minutes=4, seconds=5), NOW) == "unloads in 4:05"
    assert until(NOW - timedelta(seconds=1), NOW) == "stopping"
    assert until(NOW + timedelta(days=365 * 300), NOW) == "stays loaded (forever)"


def test_the_split_is_the_one_ollama_ps_prints() -> None:
    models = [
        RunningModel("a:1b", 1000, 1000, 4096, NOW + timedelta(minutes=5)),
        RunningModel("b:70b", 1000, 420, 8192, NOW + timedelta(minutes=5)),
        RunningModel("c:3b", 1000, 0, None, None),
    ]
    text = render_running(models, NOW).plain.splitlines()
    assert text[0].endswith("100% GPU")
    assert text[1] == "ctx 4096, unloads in 5:00"
    assert text[2].endswith("58%/42% CPU/GPU")
    assert text[3].startswith("ctx 8192")
    assert text[4].endswith("100% CPU")
    assert text[5] == "stays loaded"
    assert render_running([], NOW).plain == "no model loaded"


async def test_a_loaded_model_appears_and_u_unloads_it(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = create_app(OllamaService(standin.url), recorded_probe, fast_settings(standin.url))
    async with app.run_test(size=(120, 40)) as pilot:
        models = app.query_one(ModelsPane)
        await wait_until(lambda: models.row_count == 4)
        hardware = app.query_one(HardwarePane)
        await wait_until(lambda: "no model loaded" in widget_text(hardware))
        await type_text(pilot, "hi")
        await pilot.press("enter")
        chat = app.query_one(ChatPane)
        await wait_until(lambda: bool(standin.streams) and not chat.streaming)
        await wait_until(lambda: "100% GPU" in widget_text(hardware))

        def flat() -> str:  # the pane wraps long lines: compare without spaces, breaks and border
            return "".join(c for c in widget_text(hardware) if not c.isspace() and c != "│")

        await wait_until(lambda: "unloadsin4:" in flat())
        assert "qwen2.5:14b" in flat()
        assert "llmdeck estimated ~" in str(app.query_one("#chat-status").render())
        await pilot.press("f2")
        models.move_cursor(row=models.get_row_index("qwen2.5:14b"))
        await pilot.press("u")
        await wait_until(lambda: "no model loaded" in widget_text(hardware))
        assert standin.loaded == {}


async def test_while_a_reply_streams_its_model_is_read_once_its_tokens_begin(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    """The model is loaded for the reply, maybe afresh: the pane shows it as its tokens begin. A
    loaded model's placement does not change while it answers: not read again at the gauge rate."""
    standin.default_reply = Reply(text="word " * 300, token_delay_s=0.01)
    settings = replace(fast_settings(standin.url), hardware_refresh_s=0.05)
    app = create_app(OllamaService(standin.url), recorded_probe, settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: app.query_one(ModelsPane).row_count == 4)
        hardware = app.query_one(HardwarePane)
        await wait_until(lambda: "no model loaded" in widget_text(hardware))
        await type_text(pilot, "hi")
        await press_now(pilot, "enter")
        chat = app.query_one(ChatPane)
        await wait_until(lambda: chat.tokens_flowing)
        # Until the app has read the first token it is still waiting for the model, and reads at
        # the gauge rate: on a loaded machine that can be tens of milliseconds after it was sent.
        seen = time.monotonic()
        await wait_until(lambda: "100% GPU" in widget_text(hardware), timeout=1)
        assert chat.streaming  # shown while the reply still streams
        await wait_until(lambda: not chat.streaming)
        [stream] = standin.streams
        last = stream.token_times[-1]
        assert last - seen > 1  # 20 gauge samples and more while tokens flowed
        assert len([at for at in standin.ps_times if seen <= at <= last]) <= 2


def test_the_hardware_pane_shows_temperature_power_and_the_runners_vram(
    recorded_snapshot: HardwareSnapshot,
) -> None:
    gpu = replace(
        recorded_snapshot.gpu.gpus[0], temperature_c=71, power_w=412.3, runner_vram_bytes=8 * 1024**3
    )
    snapshot = replace(recorded_snapshot, gpu=replace(recorded_snapshot.gpu, gpus=(gpu,)))
    console = Console(width=120, file=io.StringIO())
    console.print(render_gauges(snapshot, Gauges(), None, NOW))
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "util 3% · 71 °C · 412 W · Ollama uses 8.0 GiB" in shown
