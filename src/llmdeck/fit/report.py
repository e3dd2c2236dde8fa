"""One line of `llmdeck fit`: a model, its plan on a target machine, and its estimated speed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from llmdeck.fit.planner import Plan, PlanOptions, plan
from llmdeck.fit.spec import ModelSpec
from llmdeck.fit.speed import SpeedEstimate, estimate_speed
from llmdeck.fit.target import Target
from llmdeck.fit.versions import default_num_ctx, minimum_context, regime_for


@dataclass(frozen=True, slots=True)
class FitRequest:
    """What the user asked for; None means "what Ollama would do by default"."""

    num_ctx: int | None = None
    kv_cache_type: str = "f16"
    flash_attention: bool | None = None
    parallel: int = 1
    num_gpu: int = -1
    gpu_overhead_bytes: int = 0
    ollama_version: str | None = None


@dataclass(frozen=True, slots=True)
class FitRow:
    spec: ModelSpec
    plan: Plan
    speed: SpeedEstimate | None
    # Measured ÷ estimated tokens/s from earlier replies on this machine; None until a reply is seen.
    calibration: float | None = None

    @property
    def estimated_tokens_per_s(self) -> float | None:
        """The model's own estimate, before any calibration: what a calibration is measured against."""
        return None if self.speed is None else self.speed.tokens_per_s

    @property
    def tokens_per_s(self) -> float | None:
        estimate = self.estimated_tokens_per_s
        if estimate is None or self.calibration is None:
            return estimate
        return estimate * self.calibration

    def calibrated(self, ratio: float | None) -> FitRow:
        return self if ratio is None else replace(self, calibration=ratio)

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "model": self.spec.name,
            "num_ctx": plan.num_ctx,
            "layers_total": plan.layers_total,
            "num_gpu": plan.num_gpu,
            "layers_per_gpu": list(plan.layers_per_gpu),
            "size": plan.size,
            "size_vram": plan.size_vram,
            "processor": plan.processor,
            "verdict": plan.verdict,
            "tokens_per_s": None if self.tokens_per_s is None else round(self.tokens_per_s, 1),
            "calibration": None if self.calibration is None else round(self.calibration, 3),
            "source": self.spec.source,
            "quantization": self.spec.file_type,
            "architecture": self.spec.architecture,
            "file_bytes": self.spec.file_bytes,
            "kv_cache_bytes": plan.kv_cache_bytes,
            "kv_cache_type": plan.kv_cache_type,
            "flash_attention": plan.flash_attention,
            "graph_bytes": plan.graph_bytes,
            "regime": plan.regime,
            "notes": list(plan.notes),
        }


def plan_options(spec: ModelSpec, target: Target, request: FitRequest) -> PlanOptions:
    num_ctx = request.num_ctx or default_num_ctx(
        request.ollama_version,
        target.gpu_total_bytes,
        spec.context_length,
        spec.architecture,
        request.gpu_overhead_bytes,
        len(target.gpus),
    )
    num_ctx = minimum_context(spec.architecture, num_ctx, target.gpu_total_bytes)
    return PlanOptions(
        num_ctx=num_ctx,
        parallel=request.parallel,
        kv_cache_type=request.kv_cache_type,
        flash_attention=request.flash_attention,
        num_gpu=request.num_gpu,
        gpu_overhead_bytes=request.gpu_overhead_bytes,
        regime=regime_for(request.ollama_version, spec.architecture),
    )


def fit_model(spec: ModelSpec, target: Target, request: FitRequest) -> FitRow:
    result = plan(spec, target.gpus, target.memory, plan_options(spec, target, request))
    speed = estimate_speed(
        spec,
        result,
        target.gpu_bandwidths_gbps,
        target.ram_bandwidth_gbps,
        unified_memory=target.unified_memory,
    )
    return FitRow(spec, result, speed)


def with_context(request: FitRequest, num_ctx: int) -> FitRequest:
    return replace(request, num_ctx=num_ctx)
