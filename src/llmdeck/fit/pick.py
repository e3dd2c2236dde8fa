"""Recommendations: the largest model and quant this machine runs, fully on GPU or at a usable speed."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from llmdeck.fit.catalog import load_catalog
from llmdeck.fit.report import FitRequest, FitRow, fit_model
from llmdeck.fit.spec import ModelSpec
from llmdeck.fit.target import Target

USABLE_TOKENS_PER_S = 5.0


@dataclass(frozen=True, slots=True)
class Recommendations:
    full_gpu: FitRow | None
    partial: FitRow | None
    min_tokens_per_s: float
    # Every catalog model and quant, planned: what the two above were picked from.
    catalog: tuple[FitRow, ...] = ()
    # The machine and the request they were planned for: a plan for a context since changed is stale.
    planned_for: tuple[Target, FitRequest] | None = None


@cache
def _spec(family: str, size: str, quant: str) -> ModelSpec:
    entry = next(e for e in load_catalog().entries if (e.family, e.size) == (family, size))
    return entry.spec(quant)


def catalog_rows(target: Target, request: FitRequest) -> list[FitRow]:
    """Every published quant of every catalog model, planned for `target`."""
    rows = []
    for entry in load_catalog().entries:
        for quant in entry.tags:
            rows.append(fit_model(_spec(entry.family, entry.size, quant), target, request))
    return rows


def _size_key(row: FitRow) -> tuple[int, int]:
    # Largest model first; among its quants the larger file keeps more of its quality.
    return row.spec.parameter_count, row.spec.file_bytes


def recommend(
    target: Target, request: FitRequest, min_tokens_per_s: float = USABLE_TOKENS_PER_S
) -> Recommendations:
    rows = catalog_rows(target, request)
    full = [row for row in rows if row.plan.verdict == "gpu"]
    partial = [
        row
        for row in rows
        if row.plan.verdict == "partial"
        and row.tokens_per_s is not None
        and row.tokens_per_s >= min_tokens_per_s
    ]
    return Recommendations(
        full_gpu=max(full, key=_size_key, default=None),
        partial=max(partial, key=_size_key, default=None),
        min_tokens_per_s=min_tokens_per_s,
        catalog=tuple(rows),
        planned_for=(target, request),
    )
