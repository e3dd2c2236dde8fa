"""A `ModelSpec` from GGUF metadata and its tensor table.

The same facts arrive two ways: from the server (`/api/show` with `verbose`, whose `model_info`
holds the GGUF key/values and `tensors` the tensor table) and from a GGUF file in the local store.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from llmdeck.fit.quant import FILE_TYPES, file_type_name, tensor_bytes
from llmdeck.fit.spec import ModelSpec, SpecSource
from llmdeck.fit.synth import Architecture, synthesize


class FactsError(ValueError):
    """The metadata lacks what the planner needs."""


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    kind: int | str  # GGUF type id, or its name as /api/show prints it ("Q4_K")
    shape: tuple[int, ...]

    @property
    def bytes(self) -> int:
        return tensor_bytes(self.shape, self.kind)


def _per_layer(value: Any, layers: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * layers
    if isinstance(value, Sequence) and value and all(isinstance(v, int) for v in value):
        values = [int(v) for v in value][:layers]
        return tuple(values + [values[-1]] * (layers - len(values)))
    raise FactsError(f"metadata key {name} is missing or not a number")


def architecture_from_metadata(kv: Mapping[str, Any]) -> Architecture:
    arch = kv.get("general.architecture")
    if not isinstance(arch, str):
        raise FactsError("metadata has no general.architecture")

    def number(key: str, default: int | None = None) -> int:
        value = kv.get(f"{arch}.{key}", default)
        if isinstance(value, list):
            value = max(value) if value else default
        if not isinstance(value, int):
            raise FactsError(f"metadata key {arch}.{key} is missing")
        return value

    tokens = kv.get("tokenizer.ggml.tokens")
    vocab = number("vocab_size", len(tokens) if isinstance(tokens, list) and tokens else 0)
    return Architecture(
        architecture=arch,
        block_count=number("block_count"),
        embedding_length=number("embedding_length"),
        feed_forward_length=number("feed_forward_length", 0),
        head_count=number("attention.head_count"),
        head_count_kv=number("attention.head_count_kv", number("attention.head_count")),
        vocab_size=vocab,
        context_length=number("context_length", 0),
        key_length=kv.get(f"{arch}.attention.key_length"),
        value_length=kv.get(f"{arch}.attention.value_length"),
        sliding_window=kv.get(f"{arch}.attention.sliding_window"),
        expert_count=number("expert_count", 0),
        expert_used_count=number("expert_used_count", 0),
        expert_feed_forward_length=number("expert_feed_forward_length", 0),
        expert_shared_count=number("expert_shared_count", 0),
        leading_dense_block_count=number("leading_dense_block_count", 0),
        q_lora_rank=number("attention.q_lora_rank", 0),
        kv_lora_rank=number("attention.kv_lora_rank", 0),
        rope_dimension_count=number("rope.dimension_count", 0),
    )


def spec_from_metadata(
    name: str,
    kv: Mapping[str, Any],
    tensors: Sequence[TensorInfo],
    source: SpecSource,
    quantization: str = "",
) -> ModelSpec:
    """Exact bytes from the tensor table; without one, sizes derived from the architecture."""
    arch_info = architecture_from_metadata(kv)
    arch = arch_info.architecture
    file_type_id = kv.get("general.file_type")
    if isinstance(file_type_id, int) and file_type_id in FILE_TYPES:
        file_type = FILE_TYPES[file_type_id]
    elif quantization:
        file_type = file_type_name(quantization)
    else:
        raise FactsError("metadata says neither general.file_type nor a quantization")
    parameters = kv.get("general.parameter_count")
    parameter_count = parameters if isinstance(parameters, int) else 0
    blocks = arch_info.block_count

    if not tensors:
        spec = synthesize(arch_info, file_type, name, parameter_count)
        return _with_metadata_heads(spec, kv, arch, blocks, source)

    layer_bytes = [0] * blocks
    expert_bytes = [0] * blocks
    grouped: dict[str, int] = defaultdict(int)
    gate_exps = 0
    projector = other = 0
    vocab_from_tensor = 0
    for tensor in tensors:
        parts = tensor.name.split(".")
        if parts[0] == "blk" and len(parts) > 2 and parts[1].isdigit() and int(parts[1]) < blocks:
            index = int(parts[1])
            layer_bytes[index] += tensor.bytes
            if "_exps" in parts[2]:
                expert_bytes[index] += tensor.bytes
            if index == 0 and tensor.name == "blk.0.ffn_gate_exps.weight":
                gate_exps = tensor.bytes
        elif parts[0] in ("v", "mm"):
            projector += tensor.bytes
        elif parts[0] in ("output", "output_norm", "token_embd"):
            grouped[parts[0]] += tensor.bytes
            if parts[0] == "token_embd" and len(tensor.shape) == 2:
                vocab_from_tensor = tensor.shape[1]
        else:
            other += tensor.bytes
    tied = "output" not in grouped
    output = grouped["output_norm"] + (grouped["output"] if not tied else grouped["token_embd"])
    heads = _per_layer(kv.get(f"{arch}.attention.head_count"), blocks, f"{arch}.attention.head_count")
    heads_kv_value = kv.get(f"{arch}.attention.head_count_kv", kv.get(f"{arch}.attention.head_count"))
    heads_kv = _per_layer(heads_kv_value, blocks, f"{arch}.attention.head_count_kv")
    head_dim = arch_info.embedding_length // max(min(heads), 1)
    return ModelSpec(
        name=name,
        architecture=arch,
        block_count=blocks,
        embedding_length=arch_info.embedding_length,
        head_count=heads,
        head_count_kv=heads_kv,
        key_length=arch_info.key_length or head_dim,
        value_length=arch_info.value_length or head_dim,
        vocab_size=arch_info.vocab_size or vocab_from_tensor,
        context_length=arch_info.context_length,
        layer_bytes=tuple(layer_bytes),
        output_bytes=output,
        embedding_bytes=grouped["token_embd"],
        file_type=file_type,
        parameter_count=parameter_count,
        source=source,
        projector_bytes=projector,
        sliding_window=arch_info.sliding_window,
        feed_forward_length=arch_info.feed_forward_length,
        expert_count=arch_info.expert_count,
        expert_used_count=arch_info.expert_used_count,
        ffn_gate_exps_bytes=gate_exps,
        expert_layer_bytes=tuple(expert_bytes) if arch_info.expert_count else (),
        other_bytes=other,
        is_embedding_model=f"{arch}.pooling_type" in kv,
        tied_embeddings=tied,
    )


def _with_metadata_heads(
    spec: ModelSpec, kv: Mapping[str, Any], arch: str, blocks: int, source: SpecSource
) -> ModelSpec:
    """Per-layer head counts from the metadata where it has them (some models vary per layer)."""
    heads = kv.get(f"{arch}.attention.head_count")
    heads_kv = kv.get(f"{arch}.attention.head_count_kv", heads)
    return replace(
        spec,
        head_count=_per_layer(heads, blocks, "head_count") if heads is not None else spec.head_count,
        head_count_kv=_per_layer(heads_kv, blocks, "head_count_kv")
        if heads_kv is not None
        else spec.head_count_kv,
        source=source,
        is_embedding_model=f"{arch}.pooling_type" in kv,
    )


def spec_from_show(name: str, show: Mapping[str, Any]) -> ModelSpec:
    """A spec from `/api/show` with `verbose`: `model_info` key/values and the `tensors` table."""
    info = show.get("model_info") or show.get("modelinfo")
    if not isinstance(info, Mapping):
        raise FactsError(f"{name}: the server's /api/show has no model_info")
    tensors = []
    for tensor in show.get("tensors") or []:
        try:
            tensors.append(
                TensorInfo(str(tensor["name"]), str(tensor["type"]), tuple(int(n) for n in tensor["shape"]))
            )
        except (KeyError, TypeError, ValueError) as error:
            raise FactsError(f"{name}: unreadable tensor entry in /api/show ({error})") from error
    details = show.get("details") or {}
    quantization = str(details.get("quantization_level", "")) if isinstance(details, Mapping) else ""
    try:
        return spec_from_metadata(name, info, tensors, "server", quantization)
    except ValueError as error:
        raise FactsError(f"{name}: {error}") from error
