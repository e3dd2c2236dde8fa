"""Fit the speed estimate's constants to public llama.cpp measurements and report its error.

python bench/calibrate_speed.py          # error of the shipped constants, per measurement
python bench/calibrate_speed.py --fit    # search for better constants
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

from llmdeck.fit.catalog import load_catalog
from llmdeck.fit.gpus import find_gpu
from llmdeck.fit.speed import DEFAULT_PARAMETERS, SpeedParameters, TokenWork, token_work, tokens_per_second

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "speed_measurements.json"


def load() -> list[dict]:  # type: ignore[type-arg]
    return list(json.loads(DATA.read_text())["measurements"])


def work_for(row: dict) -> TokenWork | None:  # type: ignore[type-arg]
    """The bytes each measured token read, as llmdeck models them (independent of the constants)."""
    entry, _, tag = load_catalog().resolve(row["model"])
    spec = entry.spec(row["quant"], tag)
    depth = row["depth"] or 128  # llama-bench's tg runs average over the first ~128 tokens
    if row["offload"] == "cpu":
        return token_work(spec, 0, (), (), row["ram_bandwidth_gbps"], depth_tokens=depth)
    gpu = find_gpu(row["gpu"])
    assert gpu is not None, row["gpu"]
    count = row.get("gpu_count", 1)
    layers = row.get("n_gpu_layers", spec.block_count + 1)
    split = [layers // count + (1 if i < layers % count else 0) for i in range(count)]
    return token_work(
        spec, layers, split, [gpu.bandwidth_gbps] * count, row.get("ram_bandwidth_gbps", 60.0),
        depth_tokens=depth, unified_memory=gpu.unified_memory,
    )  # fmt: skip


def errors(rows: list[dict], parameters: SpeedParameters) -> list[float]:  # type: ignore[type-arg]
    result = []
    for row in rows:
        work = row.get("_work") or work_for(row)
        if work is not None:
            predicted = tokens_per_second(work, parameters).tokens_per_s
            result.append(abs(predicted - row["tg_tok_s"]) / row["tg_tok_s"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="grid-search the constants")
    args = parser.parse_args()
    rows = load()
    for row in rows:
        row["_work"] = work_for(row)
    parameters = DEFAULT_PARAMETERS
    if args.fit:
        best = None
        grid = itertools.product(
            [0.80, 0.85, 0.90, 0.95, 1.0],
            [0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85],
            [0.35, 0.45, 0.55, 0.65, 0.75],
            [0.0, 0.0005, 0.0010, 0.0015, 0.0020, 0.0025],
            [0.00004, 0.00006, 0.00008, 0.00010, 0.00012, 0.00014],
        )
        for gpu, apple, cpu, fixed, per_layer in grid:
            candidate = SpeedParameters(gpu, apple, cpu, fixed, per_layer)
            score = statistics.median(errors(rows, candidate))
            if best is None or score < best[0]:
                best = (score, candidate)
        assert best is not None
        parameters = best[1]
        print(f"best: {parameters}")
    print(f"{'hardware':44} {'model':22} {'quant':9} {'measured':>9} {'estimated':>9} {'error':>7}")
    for row in rows:
        work = row["_work"]
        predicted = tokens_per_second(work, parameters).tokens_per_s if work else None
        shown = f"{predicted:9.1f}" if predicted else "      n/a"
        error = f"{(predicted - row['tg_tok_s']) / row['tg_tok_s'] * 100:+6.0f}%" if predicted else ""
        measured = row["tg_tok_s"]
        print(f"{row['hardware'][:44]:44} {row['model']:22} {row['quant']:9} {measured:9.1f} {shown} {error}")
    found = errors(rows, parameters)
    print(f"\n{len(found)} measurements: median absolute error {statistics.median(found) * 100:.1f}%, "
          f"within 20%: {sum(e <= 0.2 for e in found) / len(found) * 100:.0f}%")  # fmt: skip


if __name__ == "__main__":
    main()
