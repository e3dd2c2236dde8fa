"""Decode speed from memory bandwidth.

Generating one token reads every weight the token passes through once, plus the KV cache so far.
So the time per token is the bytes read on each GPU over that GPU's bandwidth, plus the bytes
read from system memory over the RAM bandwidth, each at the fraction of peak that llama.cpp
reaches in practice, plus a fixed cost per token (kernel launches, synchronisation, sampling)
that dominates for small models on fast GPUs. For a mixture of experts only the experts a token
is routed to are read, while all of them must fit in memory.

The efficiencies and fixed costs are fitted to public llama.cpp measurements
(`tests/data/speed_measurements.json`); `python bench/calibrate_speed.py` refits them and prints
the error, and a test keeps the median error in check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmdeck.fit.memory import kv_per_layer
from llmdeck.fit.planner import Plan
from llmdeck.fit.spec import ModelSpec

GB = 1e9

# Without a measurement, a desktop's RAM: dual-channel DDR4-3200 is 51 GB/s, DDR5-5600 90 GB/s.
DEFAULT_RAM_BANDWIDTH_GBPS = 60.0
DEFAULT_DEPTH_TOKENS = 512


@dataclass(frozen=True, slots=True)
class SpeedParameters:
    # Fitted on 2026-11-22 to 128 measurements (bench/calibrate_speed.py --fit): median error 9.1%.
    gpu_efficiency: float = 0.90
    apple_efficiency: float = 0.80
    cpu_efficiency: float = 0.45
    fixed_s_per_token: float = 0.0005
    fixed_s_per_layer: float = 0.000_080


DEFAULT_PARAMETERS = SpeedParameters()


@dataclass(frozen=True, slots=True)
class SpeedEstimate:
    tokens_per_s: float
    gpu_bytes_per_token: int
    cpu_bytes_per_token: int
    bound_by: str  # "GPU", "RAM" or "overhead": what takes most of the time per token


def bytes_read_per_layer(spec: ModelSpec, depth_tokens: int) -> list[int]:
    """Weights and KV cache a token reads in each block at `depth_tokens` of context."""
    kv = kv_per_layer(spec, max(depth_tokens, 1), 1, "f16")
    moe = spec.is_moe and bool(spec.expert_layer_bytes)
    window = spec.sliding_window or 0
    # Most layers of these models attend only over the window.
    windowed = window != 0 and depth_tokens > window and spec.architecture in ("gemma3", "gptoss", "gpt-oss")
    if not moe and not windowed:
        return [weights + kv_read for weights, kv_read in zip(spec.layer_bytes, kv, strict=False)]
    read = []
    for index, weights in enumerate(spec.layer_bytes):
        if moe:
            experts = spec.expert_layer_bytes[index]
            weights = weights - experts + experts * spec.expert_used_count // spec.expert_count
        kv_read = kv[index]
        if windowed:
            kv_read = kv_read * window // depth_tokens
        read.append(weights + kv_read)
    return read


@dataclass(frozen=True, slots=True)
class TokenWork:
    """What one token costs, before any efficiency is applied."""

    gpu_bytes: int
    cpu_bytes: int
    blocks: int
    # (share of the GPU bytes, bandwidth) for each GPU that holds layers
    gpu_shares: tuple[tuple[float, float], ...]
    unified_memory: bool
    ram_bandwidth_gbps: float


def token_work(
    spec: ModelSpec,
    gpu_layers: int,
    layers_per_gpu: Sequence[int],
    gpu_bandwidths_gbps: Sequence[float | None],
    ram_bandwidth_gbps: float,
    *,
    depth_tokens: int = DEFAULT_DEPTH_TOKENS,
    unified_memory: bool = False,
) -> TokenWork | None:
    """Bytes a token reads where, with the last `gpu_layers` layers (output counted last) on GPU."""
    per_layer = bytes_read_per_layer(spec, depth_tokens)
    blocks = spec.block_count
    on_gpu = min(gpu_layers, blocks)
    output_on_gpu = gpu_layers >= blocks + 1
    gpu_bytes = sum(per_layer[blocks - on_gpu :]) + (spec.output_bytes if output_on_gpu else 0)
    cpu_bytes = sum(per_layer[: blocks - on_gpu]) + (0 if output_on_gpu else spec.output_bytes)
    shares: list[tuple[float, float]] = []
    if gpu_bytes:
        held = [
            (count, bw) for count, bw in zip(layers_per_gpu, gpu_bandwidths_gbps, strict=False) if count > 0
        ]
        if not held or any(bw is None for _, bw in held):
            return None
        total = sum(count for count, _ in held)
        shares = [(count / total, float(bw or 0)) for count, bw in held]
    return TokenWork(gpu_bytes, cpu_bytes, blocks, tuple(shares), unified_memory, ram_bandwidth_gbps)


def tokens_per_second(work: TokenWork, parameters: SpeedParameters = DEFAULT_PARAMETERS) -> SpeedEstimate:
    overhead = parameters.fixed_s_per_token + parameters.fixed_s_per_layer * work.blocks
    efficiency = parameters.apple_efficiency if work.unified_memory else parameters.gpu_efficiency
    # Layers run one after another, so each GPU's share of the bytes takes its own time.
    gpu_seconds = sum(
        work.gpu_bytes * share / (bandwidth * GB * efficiency) for share, bandwidth in work.gpu_shares
    )
    cpu_seconds = (
        work.cpu_bytes / (work.ram_bandwidth_gbps * GB * parameters.cpu_efficiency) if work.cpu_bytes else 0.0
    )
    seconds = overhead + gpu_seconds + cpu_seconds
    bound = max((gpu_seconds, "GPU"), (cpu_seconds, "RAM"), (overhead, "overhead"))[1]
    return SpeedEstimate(1.0 / seconds, work.gpu_bytes, work.cpu_bytes, bound)


def estimate_speed(
    spec: ModelSpec,
    plan: Plan,
    gpu_bandwidths_gbps: Sequence[float | None],
    ram_bandwidth_gbps: float = DEFAULT_RAM_BANDWIDTH_GBPS,
    depth_tokens: int = DEFAULT_DEPTH_TOKENS,
    unified_memory: bool = False,
) -> SpeedEstimate | None:
    """Tokens per second for a planned load; None when it does not fit or a bandwidth is unknown."""
    if plan.verdict == "none":
        return None
    work = token_work(
        spec,
        plan.num_gpu,
        plan.layers_per_gpu,
        gpu_bandwidths_gbps,
        ram_bandwidth_gbps,
        depth_tokens=depth_tokens,
        unified_memory=unified_memory,
    )
    return None if work is None else tokens_per_second(work)
