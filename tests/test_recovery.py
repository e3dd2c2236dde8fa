"""What llmdeck makes of a failed load: which memory ran out, and the next, smaller load."""

from __future__ import annotations

import pytest

from llmdeck.ollama_api import ModelNotFound, OllamaResponseError, OllamaUnreachable
from llmdeck.recovery import SMALLEST_CONTEXT, explain, out_of_memory, step_down


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("llama runner process has terminated: cudaMalloc failed: out of memory", "vram"),
        ("llama runner process has terminated: CUDA error: out of memory", "vram"),
        ("memory layout cannot be allocated with num_gpu = 33", "vram"),
        ("model requires more system memory (12.3 GiB) than is available (7.9 GiB)", "ram"),
        ("llama runner process has terminated: error loading model", None),
        ("timed out waiting for llama runner to start - progress 0.00", None),
    ],
)
def test_out_of_memory_is_told_apart_by_ollamas_words(message: str, kind: str | None) -> None:
    assert out_of_memory(OllamaResponseError(500, message)) == kind


def test_only_an_answer_from_ollama_can_be_out_of_memory() -> None:
    assert out_of_memory(OllamaUnreachable("http://x", "out of memory")) is None


def test_vram_step_takes_a_tenth_of_the_layers_and_pins_the_context() -> None:
    step = step_down({}, "vram", num_gpu=33, layers_total=33, num_ctx=4096)
    assert step is not None
    assert step.options == {"num_gpu": 29, "num_ctx": 4096}
    assert "29 of 33 layers" in step.change
    # From what the failed request sent, not from the plan.
    again = step_down(step.options, "vram", num_gpu=33, layers_total=33, num_ctx=4096)
    assert again is not None and again.options["num_gpu"] == 25


def test_vram_steps_end_on_the_cpu_then_shrink_the_context() -> None:
    step = step_down({"num_gpu": 2, "num_ctx": 8192}, "vram", num_gpu=2, layers_total=33, num_ctx=8192)
    assert step is not None and step.options == {"num_gpu": 0, "num_ctx": 8192}
    assert "CPU only" in step.change
    step = step_down(step.options, "vram", num_gpu=2, layers_total=33, num_ctx=8192)
    assert step is not None and step.options == {"num_gpu": 0, "num_ctx": 4096}


def test_system_memory_shrinks_the_context_down_to_a_floor() -> None:
    step = step_down({}, "ram", num_gpu=10, layers_total=33, num_ctx=8192)
    assert step is not None and step.options == {"num_ctx": 4096}
    assert (
        step_down({"num_ctx": SMALLEST_CONTEXT}, "ram", num_gpu=None, layers_total=None, num_ctx=2048) is None
    )


def test_explanations_keep_ollamas_words_and_say_what_to_do() -> None:
    full = explain(
        OllamaResponseError(503, "server busy, please try again.  maximum pending requests exceeded"), "m"
    )
    assert "maximum pending requests exceeded" in full and "queue is full" in full
    assert "cancelled" in explain(OllamaResponseError(499, "request canceled"), "m")
    missing = explain(ModelNotFound("llama3:8b", "model 'llama3:8b' not found"), "llama3:8b")
    assert "not found" in missing and "ctrl+t to pull llama3:8b" in missing
    oom = explain(OllamaResponseError(500, "cudaMalloc failed: out of memory"), "m")
    assert "cudaMalloc failed" in oom and "fewer GPU layers" in oom
