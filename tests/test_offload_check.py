"""The alarm for a model Ollama says is on the GPU while the GPU does nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from helpers import DATA, fast_settings, type_text, wait_until, widget_text
from nvml_recordings import MIB, RecordedDevice, RecordedSequence
from ollama_standin import OllamaStandIn, Reply

from llmdeck.hardware import HardwareSnapshot, SystemProbe
from llmdeck.hardware.nvml import MemoryReading
from llmdeck.hardware.snapshot import GpuInfo, GpuReport
from llmdeck.offload_check import OffloadCheck
from llmdeck.ollama_api import OllamaService, RunningModel
from llmdeck.ui.app import create_app
from llmdeck.ui.chat_pane import ChatPane
from llmdeck.ui.models_pane import ModelsPane

GIB = 1024**3
ON_GPU = RunningModel("llama3.1:8b", 6 * GIB, 6 * GIB, 4096, datetime.now(UTC) + timedelta(minutes=5))


def machine(utilisation: int | None, runner_vram: int | None, source: str = "measured") -> HardwareSnapshot:
    base = HardwareSnapshot.load(DATA / "workstation-rtx4090.json")
    gpu = replace(base.gpu.gpus[0], utilization_percent=utilisation, runner_vram_bytes=runner_vram)
    return replace(base, gpu=replace(base.gpu, gpus=(gpu,)), source=source)  # type: ignore[arg-type]


def stream(
    check: OffloadCheck, snapshot: HardwareSnapshot, model: RunningModel | None = ON_GPU
) -> list[str | None]:
    return [check.observe(snapshot, model, tokens_flowing=True) for _ in range(4)]


def test_it_fires_when_neither_runner_vram_nor_utilisation_is_seen() -> None:
    check = OffloadCheck()
    check.observe(machine(2, 0), ON_GPU, tokens_flowing=False)  # idle before the reply
    warnings = stream(check, machine(3, 0))
    # Not on the first samples of a reply: the GPU may not have started yet.
    assert warnings[:2] == [None, None]
    warning = warnings[2]
    assert warning is not None
    assert warning.startswith("running on CPU despite GPU offload: Ollama reports 100% GPU")
    assert "llama3.1:8b" in warning
    assert "GPU 0: runner holds 0.0 GiB, utilisation 3%" in warning


def test_it_stays_quiet_when_the_gpu_shows_the_work() -> None:
    assert stream(OffloadCheck(), machine(95, 0)) == [None] * 4  # busy
    assert stream(OffloadCheck(), machine(1, 5 * GIB)) == [None] * 4  # the runner holds VRAM


def test_it_stays_quiet_when_ollama_claims_no_gpu_or_nothing_streams() -> None:
    on_cpu = replace(ON_GPU, size_vram=0)
    assert stream(OffloadCheck(), machine(0, 0), on_cpu) == [None] * 4
    assert stream(OffloadCheck(), machine(0, 0), None) == [None] * 4
    check = OffloadCheck()
    assert [check.observe(machine(0, 0), ON_GPU, tokens_flowing=False) for _ in range(5)] == [None] * 5


def test_it_cannot_judge_without_measurements() -> None:
    assert stream(OffloadCheck(), machine(0, 0, source="recorded")) == [None] * 4
    no_gpu = replace(machine(0, 0), gpu=GpuReport(unavailable_reason="no NVIDIA GPU"))
    assert stream(OffloadCheck(), no_gpu) == [None] * 4
    assert stream(OffloadCheck(), machine(None, None)) == [None] * 4  # the driver reports neither


def test_idle_is_what_the_gpu_did_before_the_reply() -> None:
    # A desktop that keeps its GPU at 20% (a browser, a compositor): 22% while streaming is idle.
    check = OffloadCheck()
    check.observe(machine(20, 0), ON_GPU, tokens_flowing=False)
    assert stream(check, machine(22, 0))[-1] is not None
    check = OffloadCheck()
    check.observe(machine(20, 0), ON_GPU, tokens_flowing=False)
    assert stream(check, machine(40, 0))[-1] is None
    # A GPU another program keeps busy cannot show whether the model runs on it: no alarm.
    check = OffloadCheck()
    check.observe(machine(90, 0), ON_GPU, tokens_flowing=False)
    assert stream(check, machine(90, 0))[-1] is None


def test_a_second_gpu_doing_the_work_is_enough() -> None:
    snapshot = machine(0, 0)
    second = GpuInfo(1, "NVIDIA GeForce RTX 3060", 12 * GIB, 6 * GIB, 6 * GIB, utilization_percent=88)
    both = replace(snapshot, gpu=replace(snapshot.gpu, gpus=(*snapshot.gpu.gpus, second)))
    assert stream(OffloadCheck(), both) == [None] * 4


def idle_4090(utilisation: int) -> list[RecordedDevice]:
    total = 24564 * MIB
    return [
        RecordedDevice(
            "NVIDIA GeForce RTX 4090", MemoryReading(total, 600 * MIB, total - 600 * MIB), utilisation
        )
    ]


async def chat_with_the_gpu_at(standin: OllamaStandIn, utilisation: int) -> tuple[str, bool]:
    """Stream a reply while NVML reads a GPU at `utilisation`; the alarm text and whether it showed."""
    reply = standin.default_reply = Reply(token_delay_s=0.03)
    probe = SystemProbe(nvml=RecordedSequence([idle_4090(utilisation)]))
    settings = replace(fast_settings(standin.url), hardware_refresh_s=0.05)
    app = create_app(OllamaService(standin.url), probe, settings)
    seen = False
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: app.query_one(ModelsPane).row_count == 4)
        await type_text(pilot, "hi")
        await pilot.press("enter")
        chat = app.query_one(ChatPane)
        alarm = app.query_one("#chat-alarm")
        await wait_until(lambda: chat.streaming)
        while chat.streaming:
            seen = seen or alarm.has_class("shown")
            if seen:
                reply.token_delay_s = 0.0  # shown: the rest of the reply need not be paced
            await pilot.pause(0.02)
        # It stays on screen after the reply, for the user to read.
        return widget_text(alarm), seen


async def test_the_chat_warns_while_a_gpu_claim_is_false(standin: OllamaStandIn) -> None:
    # The stand-in's /api/ps says 100% GPU; this GPU sits at 0% and no runner holds VRAM on it.
    text, seen = await chat_with_the_gpu_at(standin, 0)
    assert seen
    assert "running on CPU despite GPU offload" in " ".join(text.split())


async def test_the_chat_stays_quiet_when_the_gpu_is_busy(standin: OllamaStandIn) -> None:
    _, seen = await chat_with_the_gpu_at(standin, 97)
    assert not seen
