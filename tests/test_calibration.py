"""Calibration: replies measured on this machine correct llmdeck's speed estimates, across runs."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from helpers import fast_settings, type_text, wait_until
from nvml_recordings import MIB, RecordedDevice, RecordedSequence
from ollama_standin import OllamaStandIn, Reply
from textual.pilot import Pilot

from llmdeck.hardware import HardwareProbe, StaticProbe, SystemProbe
from llmdeck.hardware.nvml import MemoryReading
from llmdeck.ollama_api import OllamaService
from llmdeck.state import load_state
from llmdeck.ui.app import LlmdeckApp, create_app
from llmdeck.ui.chat_pane import ChatPane
from llmdeck.ui.models_pane import ModelsPane


def this_machine() -> SystemProbe:
    """This machine as measured, with an RTX 4090 as NVML recorded it on a real one."""
    total = 24564 * MIB
    card = RecordedDevice("NVIDIA GeForce RTX 4090", MemoryReading(total, 600 * MIB, total - 600 * MIB), 1)
    return SystemProbe(nvml=RecordedSequence([[card]]))


def build(standin: OllamaStandIn, probe: HardwareProbe, state_file: Path) -> LlmdeckApp:
    settings = replace(fast_settings(standin.url), hardware_refresh_s=0.1)
    return create_app(OllamaService(standin.url), probe, settings, state_file=state_file)


async def planned(app: LlmdeckApp) -> ModelsPane:
    models = app.query_one(ModelsPane)
    await wait_until(lambda: models.row_count == 4 and all(models.fit_of(n) for n in models.sorted_names()))
    return models


async def chat_once(app: LlmdeckApp, pilot: Pilot[None], standin: OllamaStandIn) -> str:
    """Send a prompt; returns the status line once the reply is in."""
    chat = app.query_one(ChatPane)
    assert chat.session is not None
    turns = len(chat.session.turns)
    await type_text(pilot, "llamas")
    await pilot.press("enter")
    # Done when the reply is in the conversation and its figures are on the status line.
    await wait_until(lambda: len(chat.active.turns) == turns + 2 and not chat.streaming)
    await wait_until(
        lambda: re.match(r"[\d.]+ tok/s", str(app.query_one("#chat-status").render())) is not None
    )
    return str(app.query_one("#chat-status").render())


def speed_cell(models: ModelsPane, name: str) -> str:
    return str(models.get_row(name)[3])


async def test_a_measured_reply_calibrates_the_estimate_and_it_is_kept(
    standin: OllamaStandIn, tmp_path: Path
) -> None:
    standin.default_reply = Reply(token_delay_s=0.01)
    state_file = tmp_path / "state" / "state.toml"
    app = build(standin, this_machine(), state_file)
    async with app.run_test(size=(120, 40)) as pilot:
        models = await planned(app)
        chat = app.query_one(ChatPane)
        assert chat.session is not None
        model = chat.session.model
        assert speed_cell(models, model).startswith("~")  # an estimate, nothing measured yet
        status = await chat_once(app, pilot, standin)
        measured = float(re.match(r"([\d.]+) tok/s", status).group(1))  # type: ignore[union-attr]
        # After one reply the estimate is what was measured, and the pane says it is measured here.
        await wait_until(lambda: speed_cell(models, model).endswith("*"))
        assert speed_cell(models, model) == f"{measured:.0f}*"
        assert "* tok/s measured here" in str(models.border_subtitle)
        other = next(name for name in models.sorted_names() if name != model)
        assert speed_cell(models, other).startswith("~")  # other models are still estimates

    state, problem = load_state(state_file)
    assert problem is None
    calibration = state.calibration(standin.url, model)
    assert calibration is not None and calibration.samples == 1

    # The next run starts from it.
    again = build(standin, this_machine(), state_file)
    async with again.run_test(size=(120, 40)):
        models = await planned(again)
        await wait_until(lambda: speed_cell(models, model) == f"{measured:.0f}*")


async def test_a_reply_does_not_calibrate_a_plan_made_for_another_machine(
    standin: OllamaStandIn, recorded_probe: StaticProbe, tmp_path: Path
) -> None:
    # --hardware box.json plans for that box while the replies come from this one's server.
    standin.default_reply = Reply(token_delay_s=0.005)
    state_file = tmp_path / "state.toml"
    app = build(standin, recorded_probe, state_file)
    async with app.run_test(size=(120, 40)) as pilot:
        models = await planned(app)
        await chat_once(app, pilot, standin)
        await pilot.pause(0.3)
        assert all(not speed_cell(models, name).endswith("*") for name in models.sorted_names())
    assert not state_file.exists()


async def test_a_state_file_that_cannot_be_written_is_reported_and_the_app_runs_on(
    standin: OllamaStandIn, tmp_path: Path
) -> None:
    standin.default_reply = Reply(token_delay_s=0.005)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the state directory should be\n")
    app = build(standin, this_machine(), blocked / "state.toml")
    async with app.run_test(size=(120, 40)) as pilot:
        await planned(app)
        await chat_once(app, pilot, standin)
        await wait_until(lambda: any("state not saved" in str(n.title) for n in app._notifications))
        await chat_once(app, pilot, standin)  # still chatting
    assert blocked.read_text() == "a file where the state directory should be\n"


async def test_a_measured_reply_does_not_plan_the_catalog_again(
    standin: OllamaStandIn, tmp_path: Path
) -> None:
    """The catalog's recommendation does not depend on measured speeds: planning it again after
    every reply took a core for a fifth of a second and changed nothing."""
    standin.default_reply = Reply(token_delay_s=0.01)
    app = build(standin, this_machine(), tmp_path / "state.toml")
    async with app.run_test(size=(120, 40)) as pilot:
        models = await planned(app)
        await wait_until(lambda: app.recommendations is not None, timeout=10)
        recommended = app.recommendations
        chat = app.query_one(ChatPane)
        assert chat.session is not None
        await chat_once(app, pilot, standin)
        await wait_until(lambda: speed_cell(models, chat.session.model).endswith("*"))  # type: ignore[union-attr]
        # Replanned for the measured speed: any catalog planning it started has finished and
        # reported by now.
        await wait_until(lambda: not any(w.group == "recommend" and w.is_running for w in app.workers))
        await pilot.pause()
        assert app.recommendations is recommended
        assert "Suggested" in str(app.query_one("#recommend").render())
