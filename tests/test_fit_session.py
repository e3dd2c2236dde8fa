"""Choosing the first model and the options a chat sends."""

from __future__ import annotations

from dataclasses import replace

from llmdeck.fit.catalog import load_catalog
from llmdeck.fit.planner import GpuDevice
from llmdeck.fit.report import FitRequest, FitRow, fit_model, plan_options
from llmdeck.fit.session import chat_options, next_context, preferred_model
from llmdeck.fit.target import Target

GIB = 1024**3


def target(free_gib: float, total_gib: float = 24.0) -> Target:
    from llmdeck.fit.planner import SystemMemory

    gpu = GpuDevice("NVIDIA GeForce RTX 4090", int(total_gib * GIB), int(free_gib * GIB))
    return Target((gpu,), (1008.0,), SystemMemory(64 * GIB, 48 * GIB, 0), 60.0, False, ())


def row(tag: str, on: Target) -> FitRow:
    entry, quant, name = load_catalog().resolve(tag)
    return fit_model(entry.spec(quant, name), on, FitRequest())


def test_the_first_model_is_the_largest_on_gpu_and_never_an_embedding_model() -> None:
    machine = target(8.0)
    fits = {tag: row(tag, machine) for tag in ("llama3.1:8b", "llama3.2:3b", "qwen2.5:14b")}
    assert fits["qwen2.5:14b"].plan.verdict == "partial"
    assert preferred_model(fits) == "llama3.1:8b"
    embedding = replace(fits["qwen2.5:14b"], spec=replace(fits["qwen2.5:14b"].spec, is_embedding_model=True))
    only_partial = {"embed": embedding}
    assert preferred_model(only_partial) is None


def test_options_say_only_what_ollama_would_not_do_by_itself() -> None:
    full = row("llama3.1:8b", target(22.0))
    partial = row("qwen2.5:32b", target(12.0))
    assert chat_options(full, context_chosen=False, layers_chosen=False) == {}
    assert chat_options(full, context_chosen=True, layers_chosen=False) == {"num_ctx": 4096}
    assert chat_options(partial, context_chosen=False, layers_chosen=False) == {
        "num_ctx": 4096,
        "num_gpu": partial.plan.num_gpu,
    }
    cpu = row("llama3.2:3b", target(0.1))
    assert chat_options(cpu, context_chosen=False, layers_chosen=False)["num_gpu"] == 0


def test_gpt_oss_gets_at_least_8192_on_big_gpus_even_when_asked_for_less() -> None:
    entry, quant, name = load_catalog().resolve("gpt-oss:20b")
    spec = entry.spec(quant, name)
    assert plan_options(spec, target(22.0), FitRequest(num_ctx=4096)).num_ctx == 8192
    assert plan_options(spec, target(11.0, total_gib=12.0), FitRequest(num_ctx=4096)).num_ctx == 4096


def test_context_choices_cycle_back_to_ollamas_default() -> None:
    seen = [None]
    for _ in range(8):
        seen.append(next_context(seen[-1]))
    assert seen[1] == 2048 and seen[-1] is None and 131072 in seen
