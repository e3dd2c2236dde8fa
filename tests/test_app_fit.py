"""The fit engine in the app: plans in the models pane, the model it starts with, and the options
the chat sends to Ollama."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from helpers import fast_settings, type_text, wait_until, widget_text
from ollama_standin import OllamaStandIn
from store_factory import add_model
from textual.pilot import Pilot

from llmdeck.hardware import HardwareSnapshot, StaticProbe
from llmdeck.ollama_api import OllamaService
from llmdeck.ui.app import LlmdeckApp, create_app
from llmdeck.ui.chat_pane import ChatPane, TurnNote
from llmdeck.ui.models_pane import ModelsPane
from llmdeck.ui.store_panel import StorePanel

GIB = 1024**3
SIZE = (120, 40)


def build(standin: OllamaStandIn, snapshot: HardwareSnapshot) -> LlmdeckApp:
    return create_app(OllamaService(standin.url), StaticProbe(snapshot), fast_settings(standin.url))


def with_gpu_free(snapshot: HardwareSnapshot, free_gib: float) -> HardwareSnapshot:
    gpu = snapshot.gpu.gpus[0]
    smaller = replace(
        gpu, vram_free_bytes=int(free_gib * GIB), vram_used_bytes=gpu.vram_total_bytes - int(free_gib * GIB)
    )
    return replace(snapshot, gpu=replace(snapshot.gpu, gpus=(smaller,)))


async def planned(app: LlmdeckApp) -> None:
    models = app.query_one(ModelsPane)
    await wait_until(lambda: models.row_count == 4 and all(models.fit_of(n) for n in models.sorted_names()))


async def ask(app: LlmdeckApp, pilot: Pilot[None], standin: OllamaStandIn, prompt: str) -> dict[str, int]:
    before = len(standin.chat_requests)
    await type_text(pilot, prompt)
    await pilot.press("enter")
    chat = app.query_one(ChatPane)
    await wait_until(lambda: len(standin.chat_requests) > before and not chat.streaming)
    return dict(standin.chat_requests[-1].get("options") or {})


async def test_the_models_pane_shows_each_plan(
    standin: OllamaStandIn, recorded_snapshot: HardwareSnapshot
) -> None:
    app = build(standin, recorded_snapshot)
    async with app.run_test(size=SIZE):
        await planned(app)
        models = app.query_one(ModelsPane)
        qwen = models.fit_of("qwen2.5:14b")
        assert qwen is not None
        assert (qwen.plan.verdict, qwen.plan.num_gpu, qwen.plan.layers_total) == ("gpu", 49, 49)
        row = [str(cell) for cell in models.get_row("qwen2.5:14b")]
        assert row[1:4] == ["gpu", "49/49", f"~{qwen.tokens_per_s:.0f}"]


async def test_it_starts_with_the_largest_model_that_runs_fully_on_the_gpu(
    standin: OllamaStandIn, recorded_snapshot: HardwareSnapshot
) -> None:
    # 7 GiB free: qwen2.5:14b (the largest file) would spill to the CPU; llama3.1:8b fits.
    app = build(standin, with_gpu_free(recorded_snapshot, 7.0))
    async with app.run_test(size=SIZE) as pilot:
        await planned(app)
        models = app.query_one(ModelsPane)
        assert models.fit_of("qwen2.5:14b").plan.verdict == "partial"  # type: ignore[union-attr]
        await wait_until(lambda: app.query_one(ChatPane).session.model == "llama3.1:8b")  # type: ignore[union-attr]
        assert models.active == "llama3.1:8b"
        # A full-GPU plan at Ollama's default context is what Ollama does unasked: no options,
        # so the server's own settings (OLLAMA_CONTEXT_LENGTH, the Modelfile) still apply.
        options = await ask(app, pilot, standin, "hi")
        assert options == {}


async def test_a_partial_plan_passes_num_gpu_and_keeps_it_between_turns(
    standin: OllamaStandIn, recorded_snapshot: HardwareSnapshot
) -> None:
    app = build(standin, with_gpu_free(recorded_snapshot, 7.0))
    async with app.run_test(size=SIZE) as pilot:
        await planned(app)
        await pilot.press("f2")
        models = app.query_one(ModelsPane)
        models.move_cursor(row=models.get_row_index("qwen2.5:14b"))
        await pilot.press("enter")
        partial = models.fit_of("qwen2.5:14b")
        assert partial is not None and 0 < partial.plan.num_gpu < 49
        first = await ask(app, pilot, standin, "hi")
        assert first == {"num_ctx": 4096, "num_gpu": partial.plan.num_gpu}
        # A refresh re-reads the hardware and re-plans (here: more VRAM free than before); the
        # conversation keeps the options its requests were sent with.
        app.probe = StaticProbe(recorded_snapshot)
        await pilot.press("ctrl+r")
        await wait_until(lambda: models.fit_of("qwen2.5:14b").plan.verdict == "gpu")  # type: ignore[union-attr]
        await pilot.press("f3")
        second = await ask(app, pilot, standin, "again")
        assert second == first  # identical options: no reload between turns


async def test_stepping_gpu_layers_is_an_explicit_reload(
    standin: OllamaStandIn, recorded_snapshot: HardwareSnapshot
) -> None:
    app = build(standin, recorded_snapshot)
    async with app.run_test(size=SIZE) as pilot:
        await planned(app)
        first = await ask(app, pilot, standin, "hi")
        assert first == {}  # all 49 layers fit: Ollama does that unasked
        await pilot.press("f2", "minus", "minus")
        await wait_until(lambda: app.query_one(ModelsPane).fit_of("qwen2.5:14b").plan.num_gpu == 47)  # type: ignore[union-attr]
        notes = [str(note.render()) for note in app.query(TurnNote)]
        assert any("Ollama reloads qwen2.5:14b" in note for note in notes)
        assert app.query_one(ChatPane).session.model == "qwen2.5:14b"  # type: ignore[union-attr]
        await pilot.press("f3")
        second = await ask(app, pilot, standin, "again")
        assert second == {"num_ctx": 4096, "num_gpu": 47}


async def test_cycling_the_context_replans_every_model(
    standin: OllamaStandIn, recorded_snapshot: HardwareSnapshot
) -> None:
    app = build(standin, recorded_snapshot)
    async with app.run_test(size=SIZE) as pilot:
        await planned(app)
        models = app.query_one(ModelsPane)
        before = models.fit_of("llama3.1:8b")
        await pilot.press("f2", "c")  # Ollama's default -> 2048
        assert "ctx 2048" in str(models.border_subtitle)
        await pilot.press("c", "c", "c", "c", "c", "c")  # ... -> 131072
        after = models.fit_of("llama3.1:8b")
        assert before is not None and after is not None
        assert after.plan.num_ctx == 131072
        assert after.plan.kv_cache_bytes == 32 * before.plan.kv_cache_bytes
        assert after.plan.verdict == "partial"
        await pilot.press("f3")
        options = await ask(app, pilot, standin, "hi")
        assert options["num_ctx"] == 32768  # qwen2.5:14b is clamped to its own 32k


async def test_the_store_the_server_uses_is_shown_with_its_findings(
    tmp_path: Path, standin: OllamaStandIn, recorded_snapshot: HardwareSnapshot
) -> None:
    root = tmp_path / "models"
    for name in ("llama3.1:8b", "qwen2.5:14b", "llama3.2:3b"):  # gemma2 is served but not on disk
        add_model(root, name)
    (root / "blobs" / ("sha256-" + "e" * 64 + "-partial")).write_bytes(b"z" * 100)
    standin.store_root = str(root)
    app = build(standin, recorded_snapshot)
    async with app.run_test(size=SIZE):
        await planned(app)
        panel = app.query_one(StorePanel)

        def shown() -> str:  # the panel wraps long paths: compare without the line breaks
            return "".join(widget_text(panel).split())

        await wait_until(lambda: panel.report is not None and panel.report.decision.path == root)
        await wait_until(lambda: "theserverreportsitsblobpathsthere" in shown())
        assert "doesnotexist" not in shown()
        assert "unfinisheddownloads" in shown()
        models = app.query_one(ModelsPane)
        row = str(models.get_row("gemma2:2b-instruct-q8_0")[0])
        assert "(not in store)" in row
        assert "(not in store)" not in str(models.get_row("llama3.1:8b")[0])


async def test_a_vision_projector_in_its_own_file_takes_room_on_the_gpu(
    tmp_path: Path, standin: OllamaStandIn, recorded_snapshot: HardwareSnapshot
) -> None:
    # llama3.1:8b fits whole in 7 GiB; with a 1.5 GiB projector beside it (as llava's mmproj),
    # which Ollama puts on the first GPU before any layer, it no longer does.
    digest = "f" * 64
    blobs = tmp_path / "models" / "blobs"
    blobs.mkdir(parents=True)
    projector = blobs / f"sha256-{digest}"
    projector.touch()
    os.truncate(projector, int(1.5 * GIB))  # sparse: takes no disk
    standin.store_root = str(tmp_path / "models")
    llama = standin.models["llama3.1:8b"]
    snapshot = with_gpu_free(recorded_snapshot, 7.0)
    app = build(standin, snapshot)
    async with app.run_test(size=SIZE):
        await planned(app)
        alone = app.query_one(ModelsPane).fit_of("llama3.1:8b")
        assert alone is not None and alone.plan.verdict == "gpu" and alone.spec.projector_bytes == 0

    standin.models["llama3.1:8b"] = replace(llama, projector_digest=digest)
    app = build(standin, snapshot)
    async with app.run_test(size=SIZE) as pilot:
        await planned(app)
        models = app.query_one(ModelsPane)
        fit = models.fit_of("llama3.1:8b")
        assert fit is not None and fit.spec.projector_bytes == int(1.5 * GIB)
        assert fit.plan.verdict == "partial" and fit.plan.num_gpu < alone.plan.num_gpu
        assert fit.plan.size >= alone.plan.size + int(1.5 * GIB)
        # The details window says what the room is for.
        models.focus()
        models.move_cursor(row=models.get_row_index("llama3.1:8b"))
        await pilot.press("i")
        await wait_until(lambda: "vision weights" in widget_text(app.screen))
        assert "1.5 GiB, on the first GPU before any layer" in widget_text(app.screen)


async def test_what_ollama_holds_counts_as_free_so_a_loaded_model_keeps_its_plan(
    standin: OllamaStandIn, recorded_snapshot: HardwareSnapshot
) -> None:
    # ctrl+r while a large model is loaded: the card shows 16 GiB used by Ollama's runner, leaving
    # 7 GiB, less than qwen2.5:14b needs. Ollama would evict (or reuse) that memory, so the plan
    # must not turn partial because of it.
    gpu = recorded_snapshot.gpu.gpus[0]
    held = 16 * GIB
    loaded = replace(
        gpu,
        vram_used_bytes=gpu.vram_used_bytes + held,
        vram_free_bytes=gpu.vram_free_bytes - held,
        runner_vram_bytes=held,
    )
    busy = replace(recorded_snapshot, gpu=replace(recorded_snapshot.gpu, gpus=(loaded,)))
    app = build(standin, busy)
    async with app.run_test(size=SIZE):
        await planned(app)
        qwen = app.query_one(ModelsPane).fit_of("qwen2.5:14b")
        assert qwen is not None and qwen.plan.verdict == "gpu"
    # Without the runner's figure (a driver that does not report it) the same card looks full.
    unknown = replace(busy, gpu=replace(busy.gpu, gpus=(replace(loaded, runner_vram_bytes=None),)))
    app = build(standin, unknown)
    async with app.run_test(size=SIZE):
        await planned(app)
        qwen = app.query_one(ModelsPane).fit_of("qwen2.5:14b")
        assert qwen is not None and qwen.plan.verdict != "gpu"
