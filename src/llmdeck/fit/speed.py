"""Decode speed from memory bandwidth.

Generating one token reads every weight the token passes through once, plus the KV cache so far.
So the time per token is the bytes read on each GPU over that GPU's bandwidth, plus the bytes
read from system memory over the RAM bandwidth, each at the fraction of peak that llama.cpp
reaches in practice, plus a fixed cost per token (kernel launches, sampling) that dominates for
small models. For a mixture of experts only the experts a token is routed to are read, while
all of them must fit in memory.

The efficiency factors and the fixed cost are fitted to public llama.cpp measurements; see
`tests/data/speed_measurements.json` and `bench/calibrate_speed.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmdeck.fit.memory import kv_per_layer
from llmdeck.fit.planner import Plan
from llmdeck.fit.spec import ModelSpec

GB = 1e9

# Fitted to the public measurements (bench/calibrate_speed.py prints the fit and its error).
GPU_EFFICIENCY = 0.72
APPLE_EFFICIENCY = 0.72
CPU_EFFICIENCY = 0.60
FIXED_SECONDS_PER_TOKEN = 0.0008
FIXED_SECONDS_PER_LAYER = 0.000_025

# Without a measurement, a desktop's RAM: dual-channel DDR4-3200 is 51 GB/s, DDR5-5600 90 GB/s.
DEFAULT_RAM_BANDWIDTH_GBPS = 60.0
DEFAULT_DEPTH_TOKENS = 512


@dataclass(frozen=True, slots=True)
class SpeedEstimate:
    tokens_per_s: float
    gpu_bytes_per_token: int
    cpu_bytes_per_token: int
    bound_by: str  # which memory limits the speed: "GPU" or "RAM"


def bytes_read_per_layer(spec: ModelSpec, depth_tokens: int) -> list[int]:
    """Weights and KV cache a token reads in each block at `depth_tokens` of context."""
    kv = kv_per_layer(spec, max(depth_tokens, 1), 1, "f16")
    read = []
    for index, weights in enumerate(spec.layer_bytes):
        if spec.is_moe and spec.expert_layer_bytes:
            experts = spec.expert_layer_bytes[index]
            weights = weights - experts + experts * spec.expert_used_count // spec.expert_count
        window = spec.sliding_window
        kv_read = kv[index]
        if window and depth_tokens > window and spec.architecture in ("gemma3", "gptoss", "gpt-oss"):
            kv_read = kv_read * window // depth_tokens
        read.append(weights + kv_read)
    return read


def estimate_speed(
    spec: ModelSpec,
    plan: Plan,
    gpu_bandwidths_gbps: Sequence[float | None],
    ram_bandwidth_gbps: float = DEFAULT_RAM_BANDWIDTH_GBPS,
    depth_tokens: int = DEFAULT_DEPTH_TOKENS,
    unified_memory: bool = False,
) -> SpeedEstimate | None:
    """Tokens per second for a planned load, or None when a GPU's bandwidth is unknown."""
    if plan.verdict == "none":
        return None
    per_layer = bytes_read_per_layer(spec, depth_tokens)
    blocks = spec.block_count
    on_gpu = min(plan.num_gpu, blocks)
    # The last `on_gpu` blocks are on the GPU(s); the output joins once every block is there.
    gpu_blocks = per_layer[blocks - on_gpu :] if on_gpu else []
    cpu_blocks = per_layer[: blocks - on_gpu]
    output_on_gpu = plan.num_gpu >= blocks + 1
    gpu_bytes = sum(gpu_blocks) + (spec.output_bytes if output_on_gpu else 0)
    cpu_bytes = sum(cpu_blocks) + (0 if output_on_gpu else spec.output_bytes)

    seconds = FIXED_SECONDS_PER_TOKEN + FIXED_SECONDS_PER_LAYER * blocks
    if gpu_bytes:
        counts = [count for count in plan.layers_per_gpu] or [on_gpu]
        total_layers = sum(counts) or 1
        efficiency = APPLE_EFFICIENCY if unified_memory else GPU_EFFICIENCY
        for count, bandwidth in zip(counts, gpu_bandwidths_gbps, strict=False):
            if count == 0:
                continue
            if bandwidth is None:
                return None
            seconds += gpu_bytes * count / total_layers / (bandwidth * GB * efficiency)
    if cpu_bytes:
        seconds += cpu_bytes / (ram_bandwidth_gbps * GB * CPU_EFFICIENCY)
    gpu_time = gpu_bytes / GB
    bound = "GPU" if gpu_bytes and (not cpu_bytes or gpu_time > cpu_bytes / GB) else "RAM"
    return SpeedEstimate(1.0 / seconds, gpu_bytes, cpu_bytes, bound)
