"""What a failed chat request means, and what to try next.

Ollama's words stay as they are; this module adds what a user can do about them, and picks the
next, smaller load after the server ran out of memory loading a model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from llmdeck.ollama_api import ModelNotFound, OllamaError, OllamaResponseError

OutOfMemory = Literal["vram", "ram"]

# The load failures Ollama reports (`llm/server.go`, `llm/status.go`), by the memory that ran out.
_VRAM_PATTERNS = (
    r"cudaMalloc failed",
    r"CUDA error: out of memory",
    r"out of memory",
    r"memory layout cannot be allocated",
    r"unable to allocate \w+ buffer",
    r"failed to allocate .*buffer",
    r"ErrorOutOfDeviceMemory",
    r"insufficient memory",
)
_RAM_PATTERNS = (r"requires more system memory", r"cannot allocate memory")
# Fewer than this many tokens of context leaves no room for a conversation.
SMALLEST_CONTEXT = 2048
# Each retry takes a tenth of the layers off the GPU (at least one): a few retries cover the
# usual misestimate without walking down one layer per reload.
LAYER_STEP_FRACTION = 0.1


def out_of_memory(error: OllamaError) -> OutOfMemory | None:
    """Whether a failed load ran out of memory, and which: VRAM (fewer GPU layers help) or
    system memory (a smaller context helps; fewer GPU layers would make it worse)."""
    if not isinstance(error, OllamaResponseError):
        return None
    message = error.message
    if any(re.search(pattern, message, re.IGNORECASE) for pattern in _RAM_PATTERNS):
        return "ram"
    if any(re.search(pattern, message, re.IGNORECASE) for pattern in _VRAM_PATTERNS):
        return "vram"
    return None


@dataclass(frozen=True, slots=True)
class StepDown:
    """The options of the next attempt and a sentence saying what changed."""

    options: dict[str, int]
    change: str


def step_down(
    options: Mapping[str, int],
    kind: OutOfMemory,
    *,
    num_gpu: int | None,
    layers_total: int | None,
    num_ctx: int,
) -> StepDown | None:
    """The next, smaller load to try after running out of memory; None when nothing is left.

    `num_gpu` and `layers_total` are the planned layer counts (None without a plan); `num_ctx`
    the context the failed load used.
    """
    current_gpu = options.get("num_gpu", num_gpu)
    if kind == "vram" and current_gpu is not None and current_gpu > 0:
        total = layers_total or current_gpu
        step = max(1, math.ceil(total * LAYER_STEP_FRACTION))
        fewer = max(0, current_gpu - step)
        where = "on the CPU only" if fewer == 0 else f"with {fewer} of {total} layers on the GPU"
        # The layer count holds at one context: pin it with the layers, or Ollama's may differ.
        return StepDown(
            {**options, "num_gpu": fewer, "num_ctx": num_ctx}, f"retrying {where} (num_gpu {fewer})"
        )
    if num_ctx > SMALLEST_CONTEXT:
        smaller = max(SMALLEST_CONTEXT, num_ctx // 2)
        return StepDown(
            {**options, "num_ctx": smaller}, f"retrying with a context of {smaller} tokens (num_ctx)"
        )
    return None


def explain(error: OllamaError, model: str) -> str:
    """One sentence for the transcript: Ollama's words, then what to do about them."""
    if isinstance(error, ModelNotFound):
        return f"{error} · press ctrl+t to pull {model}"
    if isinstance(error, OllamaResponseError):
        if error.status_code == 503:
            return (
                f"{error} · Ollama's queue is full (OLLAMA_MAX_QUEUE): other requests are waiting; "
                "your prompt is back in the input, send it again in a moment"
            )
        if error.status_code == 499:
            return f"{error} · the server cancelled the request; your prompt is back in the input"
        kind = out_of_memory(error)
        if kind == "ram":
            return f"{error} · not enough system memory for {model}: a smaller context (c) or a smaller model"
        if kind == "vram":
            return f"{error} · not enough VRAM for {model}: fewer GPU layers (-) or a smaller context (c)"
    return str(error)
