"""The speed estimate against public llama.cpp measurements, and its shape."""

from __future__ import annotations

import importlib.util
import statistics
import sys
from pathlib import Path
from types import ModuleType

from llmdeck.fit.catalog import load_catalog
from llmdeck.fit.speed import token_work, tokens_per_second

RTX_4090_GBPS = 1008.0


def calibration() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "bench" / "calibrate_speed.py"
    spec = importlib.util.spec_from_file_location("calibrate_speed", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["calibrate_speed"] = module
    spec.loader.exec_module(module)
    return module


def test_median_error_against_public_measurements_stays_near_ten_percent() -> None:
    bench = calibration()
    rows = bench.load()
    errors = bench.errors(rows, bench.DEFAULT_PARAMETERS)
    assert len(errors) >= 100
    assert statistics.median(errors) <= 0.12  # 9.1% when fitted on 2026-11-22


def speed(
    tag: str, gpu_layers: int | None = None, depth: int = 512, bandwidth: float = RTX_4090_GBPS
) -> float:
    entry, quant, name = load_catalog().resolve(tag)
    spec = entry.spec(quant, name)
    layers = spec.block_count + 1 if gpu_layers is None else gpu_layers
    work = token_work(spec, layers, [layers], [bandwidth], 60.0, depth_tokens=depth)
    assert work is not None
    return tokens_per_second(work).tokens_per_s


def test_a_mixture_of_experts_reads_only_its_active_experts() -> None:
    # qwen3:30b (3B active) and qwen3:32b (dense) are files of about the same size.
    assert speed("qwen3:30b") > 3 * speed("qwen3:32b")


def test_deep_context_slows_decoding() -> None:
    assert speed("llama3.1:8b", depth=32768) < 0.8 * speed("llama3.1:8b", depth=512)


def test_layers_left_in_ram_cost_most_of_the_speed() -> None:
    full = speed("llama3.1:70b")
    half = speed("llama3.1:70b", gpu_layers=40)
    cpu = speed("llama3.1:70b", gpu_layers=0)
    assert full > 3 * half > 3 * cpu / 2
    assert cpu < 2.0  # 42 GB over 60 GB/s of RAM


def test_unknown_bandwidth_gives_no_estimate_rather_than_a_guess() -> None:
    entry, quant, name = load_catalog().resolve("llama3.1:8b")
    assert token_work(entry.spec(quant, name), 33, [33], [None], 60.0) is None
