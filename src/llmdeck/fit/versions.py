"""What an Ollama version does by default: its context length and how it places layers."""

from __future__ import annotations

import re

from llmdeck.fit.planner import Regime

GIB = 1024**3

# Architectures Ollama runs on its own engine; from 0.11.5 their layout is the newer one.
OLLAMA_ENGINE_ARCHITECTURES = frozenset(
    {
        "bert", "deepseek2", "gemma3", "gemma3n", "gptoss", "gpt-oss", "llama4", "mistral3",
        "mllama", "qwen25vl", "qwen3", "qwen3moe", "qwen3vl", "qwen3vlmoe",
    }
)  # fmt: skip


class VersionError(ValueError):
    pass


def parse_version(text: str) -> tuple[int, int, int]:
    """'0.12.10' -> (0, 12, 10); pre-release and build suffixes ('0.13.0-rc1') are ignored."""
    match = re.match(r"\s*v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        raise VersionError(f"not an Ollama version: {text!r} (expected X.Y.Z)")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def regime_for(version: str | None, architecture: str) -> Regime:
    """How the server places layers. Unknown version: the classic estimator, which is conservative."""
    if version is None:
        return "estimator"
    parsed = parse_version(version)
    if parsed >= (0, 30, 0):
        return "fit"
    if parsed >= (0, 12, 11):
        return "layout"
    if parsed >= (0, 11, 5) and architecture in OLLAMA_ENGINE_ARCHITECTURES:
        return "layout"
    return "estimator"


def default_num_ctx(
    version: str | None,
    gpu_total_bytes: int,
    model_context_length: int,
    architecture: str,
    gpu_overhead_bytes: int = 0,
    gpu_count: int = 1,
) -> int:
    """The context Ollama gives a model when the request does not set `num_ctx`."""
    parsed = parse_version(version) if version else None
    if parsed is not None and parsed <= (0, 6, 6):
        context = 2048
    elif parsed is not None and parsed >= (0, 15, 5):
        # Since 0.15.5 the default grows with the VRAM of the machine.
        vram = gpu_total_bytes - gpu_overhead_bytes * gpu_count
        context = 262144 if vram >= 47 * GIB else 32768 if vram >= 23 * GIB else 4096
    else:
        context = 4096
    if model_context_length:
        context = min(context, model_context_length)
    return context


def minimum_context(architecture: str, num_ctx: int, gpu_total_bytes: int) -> int:
    """Ollama raises any context, even one the user set, to 8192 for gpt-oss (and qwen3vl) when
    the GPUs hold 20 GiB or more (`server/routes.go`)."""
    if architecture in ("gptoss", "gpt-oss", "qwen3vl") and gpu_total_bytes >= 20 * GIB:
        return max(num_ctx, 8192)
    return num_ctx
