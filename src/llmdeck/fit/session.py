"""Planning for the installed models of a session: which to start with, and what to ask Ollama."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from llmdeck.fit.report import FitRequest, FitRow, fit_model
from llmdeck.fit.spec import ModelSpec
from llmdeck.fit.target import Target

# None is "whatever Ollama would choose"; then the common sizes a user steps through.
CONTEXT_CHOICES: tuple[int | None, ...] = (None, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


def next_context(current: int | None) -> int | None:
    index = CONTEXT_CHOICES.index(current) if current in CONTEXT_CHOICES else 0
    return CONTEXT_CHOICES[(index + 1) % len(CONTEXT_CHOICES)]


def context_label(num_ctx: int | None) -> str:
    return "ctx: Ollama's default" if num_ctx is None else f"ctx {num_ctx}"


def plan_installed(
    specs: Mapping[str, ModelSpec],
    target: Target,
    request: FitRequest,
    gpu_layers: Mapping[str, int] | None = None,
) -> dict[str, FitRow]:
    """A plan per model; `gpu_layers` holds the layer counts the user set by hand."""
    chosen = gpu_layers or {}
    return {
        name: fit_model(spec, target, replace(request, num_gpu=chosen.get(name, request.num_gpu)))
        for name, spec in specs.items()
    }


def preferred_model(fits: Mapping[str, FitRow]) -> str | None:
    """The largest model that runs fully on the GPU, else the fastest that fits at all.

    Embedding models cannot chat and are never the pick.
    """
    chat_models = {name: row for name, row in fits.items() if not row.spec.is_embedding_model}
    full = [row for row in chat_models.values() if row.plan.verdict == "gpu"]
    if full:
        return max(full, key=lambda row: (row.spec.file_bytes, row.spec.name)).spec.name
    fitting = [row for row in chat_models.values() if row.plan.verdict in ("partial", "cpu")]
    if fitting:
        return max(fitting, key=lambda row: (row.tokens_per_s or 0.0, row.spec.name)).spec.name
    return None


def chat_options(fit: FitRow, *, context_chosen: bool, layers_chosen: bool) -> dict[str, int]:
    """Options that make Ollama load the model as planned, and no more than that.

    Left alone, Ollama already does what a full-GPU plan says, and keeps honouring the server's
    own settings (`OLLAMA_CONTEXT_LENGTH`, a Modelfile's `num_ctx`); so `num_ctx` goes only when
    the user chose a context, and `num_gpu` only for a partial or CPU plan or a count the user
    set. Every request of a session sends the same options: a change of `num_ctx` or `num_gpu`
    between requests makes Ollama reload the model.
    """
    plan = fit.plan
    options: dict[str, int] = {}
    if context_chosen:
        options["num_ctx"] = plan.num_ctx
    if layers_chosen or plan.verdict in ("partial", "cpu"):
        options["num_gpu"] = plan.num_gpu
        # The layer count was planned at this context: pin it too, or Ollama's may differ.
        options["num_ctx"] = plan.num_ctx
    return options


def step_layers(fit: FitRow, step: int) -> int:
    """The next GPU layer count a user asks for, within 0 and every layer."""
    return max(0, min(fit.plan.layers_total, fit.plan.num_gpu + step))
