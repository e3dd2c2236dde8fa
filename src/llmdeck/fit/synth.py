"""A model's tensors from its architecture, for models not on this machine.

Given the hyperparameters of an architecture (from the catalog) and a file type, this lays out
the tensors a GGUF of that model holds and the type llama.cpp's quantizer gives each one (the
`llama_tensor_get_type` rules: the output in Q6_K, some `attn_v` and `ffn_down` layers with more
bits, k-quants falling back when a row is not a multiple of 256, ...). Summing them gives the
per-layer bytes the planner needs, within a few percent of the real files (see the tests).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from llmdeck.fit.quant import TENSOR_TYPES_BY_NAME, file_type_name, tensor_type
from llmdeck.fit.spec import ModelSpec

QK_K = 256


@dataclass(frozen=True, slots=True)
class Architecture:
    """Hyperparameters as GGUF metadata names them (`<arch>.block_count`, ...)."""

    architecture: str
    block_count: int
    embedding_length: int
    feed_forward_length: int
    head_count: int
    head_count_kv: int
    vocab_size: int
    context_length: int
    key_length: int | None = None
    value_length: int | None = None
    sliding_window: int | None = None
    expert_count: int = 0
    expert_used_count: int = 0
    expert_feed_forward_length: int = 0
    expert_shared_count: int = 0
    leading_dense_block_count: int = 0
    tied_embeddings: bool = False
    # deepseek2's multi-head latent attention
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    rope_dimension_count: int = 0

    @property
    def head_dim_k(self) -> int:
        return self.key_length or self.embedding_length // self.head_count

    @property
    def head_dim_v(self) -> int:
        return self.value_length or self.embedding_length // self.head_count


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    type_name: str

    @property
    def bytes(self) -> int:
        kind = TENSOR_TYPES_BY_NAME.get(self.type_name) or tensor_type(self.type_name)
        return kind.bytes_for(math.prod(self.shape))


def gguf_name(layer: int | None, tensor: Tensor) -> str:
    """The tensor's name in a GGUF file: `blk.3.attn_q.weight`, `output_norm.weight`."""
    name = tensor.name if tensor.name.endswith((".weight", ".bias")) else f"{tensor.name}.weight"
    return name if layer is None else f"blk.{layer}.{name}"


def use_more_bits(layer: int, layers: int) -> bool:
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


_BASE_TYPE = {
    "Q2_K": "Q2_K", "Q2_K_S": "Q2_K", "Q3_K_S": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_L": "Q3_K",
    "Q4_K_S": "Q4_K", "Q4_K_M": "Q4_K", "Q5_K_S": "Q5_K", "Q5_K_M": "Q5_K", "Q6_K": "Q6_K",
    "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0", "Q5_1": "Q5_1", "Q8_0": "Q8_0",
    "F16": "F16", "BF16": "BF16", "F32": "F32", "IQ4_XS": "IQ4_XS", "IQ4_NL": "IQ4_NL",
    "MXFP4_MOE": "BF16",
}  # fmt: skip
_UNQUANTIZED = {"F16", "BF16", "F32"}
# k-quants need rows that are a multiple of 256; llama.cpp substitutes these when they are not.
_ROW_FALLBACK = {
    "Q2_K": "IQ4_NL",
    "Q3_K": "IQ4_NL",
    "IQ4_XS": "IQ4_NL",
    "Q4_K": "Q5_0",
    "Q5_K": "Q5_1",
    "Q6_K": "Q8_0",
}


def quant_type(
    role: str,
    file_type: str,
    layer: int,
    layers: int,
    row_length: int,
    arch: Architecture,
) -> str:
    """The type llama.cpp's quantizer gives a 2-D (or expert 3-D) weight of `role`."""
    base = _BASE_TYPE[file_type]
    if file_type == "MXFP4_MOE" and role.endswith("_exps"):
        return "MXFP4"
    if base in _UNQUANTIZED:
        return base
    chosen = base
    gqa = arch.head_count // max(arch.head_count_kv, 1)
    experts = arch.expert_count
    if role == "output":
        chosen = "Q8_0" if base == "Q8_0" else "Q6_K"
    elif role == "attn_v":
        if file_type == "Q2_K":
            chosen = "Q4_K" if gqa >= 4 else "Q3_K"
        elif file_type == "Q3_K_M":
            chosen = "Q5_K" if layer < 2 else "Q4_K"
        elif file_type == "Q3_K_L":
            chosen = "Q5_K"
        elif file_type in ("Q4_K_M", "Q5_K_M") and use_more_bits(layer, layers):
            chosen = "Q6_K"
        elif file_type == "Q4_K_S" and layer < 4:
            chosen = "Q5_K"
        if arch.architecture == "llama" and arch.block_count == 80 and chosen in ("Q3_K", "Q4_K"):
            # llama.cpp gives 70B models' small, shared attn_v more bits at almost no cost.
            chosen = "Q5_K"
        if experts == 8:
            chosen = "Q8_0"
    elif role in ("ffn_down", "ffn_down_exps"):
        if file_type == "Q2_K":
            chosen = "Q3_K"
        elif file_type == "Q2_K_S" and layer < layers // 8:
            chosen = "Q4_K"
        elif file_type == "Q3_K_M":
            chosen = "Q5_K" if layer < layers // 16 else "Q4_K"
        elif file_type == "Q3_K_L":
            chosen = "Q5_K"
        elif file_type in ("Q4_K_M", "Q5_K_M") and use_more_bits(layer, layers):
            chosen = "Q6_K"
        elif file_type == "Q4_K_S" and layer < layers // 8:
            chosen = "Q5_K"
    elif role == "attn_output":
        if experts == 8:
            if file_type in ("Q2_K", "Q3_K_S", "Q3_K_M", "Q4_K_S", "Q4_K_M"):
                chosen = "Q5_K"
        elif file_type == "Q2_K":
            chosen = "Q3_K"
        elif file_type == "Q3_K_M":
            chosen = "Q4_K"
        elif file_type == "Q3_K_L":
            chosen = "Q5_K"
    elif role == "attn_qkv":
        chosen = {"Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K", "Q4_K_M": "Q5_K", "Q5_K_M": "Q6_K"}.get(file_type, base)
    block = TENSOR_TYPES_BY_NAME[chosen].block_elements
    if row_length % block != 0:
        chosen = _ROW_FALLBACK.get(chosen, "Q8_0" if row_length % 32 == 0 else "F16")
        if row_length % TENSOR_TYPES_BY_NAME[chosen].block_elements != 0:
            chosen = "F16"
    return chosen


def layer_class(layer: int, layers: int, leading_dense: int) -> tuple[bool, ...]:
    """Everything about a block's index that its tensors depend on: the conditions on `layer` in
    `quant_type` and whether the block is a dense one before the experts. Blocks of one class
    hold the same tensors in the same types."""
    return (
        layer < leading_dense,
        use_more_bits(layer, layers),
        layer < 2,
        layer < 4,
        layer < layers // 8,
        layer < layers // 16,
    )


@dataclass(frozen=True, slots=True)
class _Builder:
    arch: Architecture
    file_type: str

    def weight(self, role: str, shape: tuple[int, ...], layer: int = 0, name: str | None = None) -> Tensor:
        chosen = quant_type(role, self.file_type, layer, self.arch.block_count, shape[0], self.arch)
        return Tensor(name or role, shape, chosen)

    @staticmethod
    def vector(role: str, length: int) -> Tensor:
        return Tensor(role, (length,), "F32")


def tensors(
    arch: Architecture, file_type: str, embedding_type: str | None = None
) -> Iterator[tuple[int | None, Tensor]]:
    """Every tensor of the model with its block index (None outside the blocks).

    `embedding_type` forces the type of `token_embd` where a file is known to differ from the
    quantizer's rules (Ollama's own quantizer keeps qwen3's embeddings in Q6_K).
    """
    build = _Builder(arch, file_type_name(file_type))
    yield from ((None, tensor) for tensor in _outside_blocks(build, embedding_type))
    for i in range(arch.block_count):
        yield from ((i, tensor) for tensor in _block(build, i))


def _outside_blocks(build: _Builder, embedding_type: str | None) -> Iterator[Tensor]:
    arch = build.arch
    e = arch.embedding_length
    # A tied embedding doubles as the output, so the quantizer treats it as the output.
    role = "output" if arch.tied_embeddings else "token_embd"
    embedding = build.weight(role, (e, arch.vocab_size), name="token_embd")
    if embedding_type is not None:
        embedding = Tensor("token_embd", embedding.shape, embedding_type)
    yield embedding
    yield build.vector("output_norm", e)
    if not arch.tied_embeddings:
        yield build.weight("output", (e, arch.vocab_size))


def _block(build: _Builder, i: int) -> Iterator[Tensor]:
    arch = build.arch
    weight, vector = build.weight, build.vector
    e = arch.embedding_length
    name = arch.architecture
    heads, heads_kv = arch.head_count, arch.head_count_kv
    dk, dv = arch.head_dim_k, arch.head_dim_v
    yield vector("attn_norm", e)
    if name == "deepseek2":
        yield from _mla_attention(build, i)
    elif name == "phi3":
        yield weight("attn_qkv", (e, heads * dk + 2 * heads_kv * dk), i)
        yield weight("attn_output", (heads * dv, e), i)
    else:
        yield weight("attn_q", (e, heads * dk), i)
        yield weight("attn_k", (e, heads_kv * dk), i)
        yield weight("attn_v", (e, heads_kv * dv), i)
        yield weight("attn_output", (heads * dv, e), i)
        if name in ("qwen2", "gptoss", "gpt-oss"):
            yield vector("attn_q.bias", heads * dk)
            yield vector("attn_k.bias", heads_kv * dk)
            yield vector("attn_v.bias", heads_kv * dv)
        if name in ("gptoss", "gpt-oss"):
            yield vector("attn_output.bias", e)
            yield vector("attn_sinks", heads)
        if name in ("qwen3", "qwen3moe", "gemma3"):
            yield vector("attn_q_norm", dk)
            yield vector("attn_k_norm", dk)
    if name in ("gemma2", "gemma3"):
        yield vector("post_attention_norm", e)
        yield vector("post_ffw_norm", e)
    if name != "command-r":
        yield vector("ffn_norm", e)
    yield from _feed_forward(build, i)


@cache
def _layer_classes(layers: int, leading_dense: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The first block of each `layer_class` among `layers` blocks, and each block's class as an
    index into those (many models share a block count, so this is worked out once per count)."""
    numbers: dict[tuple[bool, ...], int] = {}
    firsts: list[int] = []
    class_of_block = []
    for i in range(layers):
        kind = layer_class(i, layers, leading_dense)
        if kind not in numbers:
            numbers[kind] = len(firsts)
            firsts.append(i)
        class_of_block.append(numbers[kind])
    return tuple(firsts), tuple(class_of_block)


def _block_signature(build: _Builder, i: int) -> tuple[object, ...]:
    """What makes block i's bytes differ from another block's: of a block's weights only `attn_v`
    and `ffn_down` get a type that depends on the index."""
    arch = build.arch
    e = arch.embedding_length
    ff = arch.expert_feed_forward_length or arch.feed_forward_length
    moe = arch.expert_count > 0 and i >= arch.leading_dense_block_count
    return (
        moe,
        quant_type("attn_v", build.file_type, i, arch.block_count, e, arch),
        quant_type("ffn_down_exps" if moe else "ffn_down", build.file_type, i, arch.block_count, ff, arch),
        i < arch.leading_dense_block_count,
    )


def _feed_forward(build: _Builder, i: int) -> Iterator[Tensor]:
    arch = build.arch
    weight, vector = build.weight, build.vector
    e = arch.embedding_length
    if arch.expert_count > 0 and i >= arch.leading_dense_block_count:
        ff = arch.expert_feed_forward_length or arch.feed_forward_length
        experts = arch.expert_count
        yield vector("ffn_gate_inp", e * experts)
        yield weight("ffn_gate_exps", (e, ff, experts), i)
        yield weight("ffn_up_exps", (e, ff, experts), i)
        yield weight("ffn_down_exps", (ff, e, experts), i)
        if arch.architecture in ("gptoss", "gpt-oss"):
            yield vector("ffn_gate_inp.bias", experts)
            yield vector("ffn_exps.bias", (2 * ff + e) * experts)
        if arch.expert_shared_count:
            shared = ff * arch.expert_shared_count
            yield weight("ffn_gate_shexp", (e, shared), i)
            yield weight("ffn_up_shexp", (e, shared), i)
            yield weight("ffn_down_shexp", (shared, e), i)
    elif arch.architecture == "phi3":
        yield weight("ffn_up", (e, 2 * arch.feed_forward_length), i)
        yield weight("ffn_down", (arch.feed_forward_length, e), i)
    else:
        ff = arch.feed_forward_length
        yield weight("ffn_gate", (e, ff), i)
        yield weight("ffn_up", (e, ff), i)
        yield weight("ffn_down", (ff, e), i)


def _mla_attention(build: _Builder, i: int) -> Iterator[Tensor]:
    """deepseek2's multi-head latent attention: low-rank query and a shared compressed KV."""
    arch = build.arch
    weight, vector = build.weight, build.vector
    e, heads = arch.embedding_length, arch.head_count
    rope = arch.rope_dimension_count
    qk = arch.key_length or 192
    v = arch.value_length or 128
    if arch.q_lora_rank:
        yield weight("attn_q_a", (e, arch.q_lora_rank), i)
        yield vector("attn_q_a_norm", arch.q_lora_rank)
        yield weight("attn_q_b", (arch.q_lora_rank, heads * qk), i)
    else:
        yield weight("attn_q", (e, heads * qk), i)
    yield weight("attn_kv_a_mqa", (e, arch.kv_lora_rank + rope), i)
    yield vector("attn_kv_a_norm", arch.kv_lora_rank)
    yield weight("attn_kv_b", (arch.kv_lora_rank, heads * (qk - rope + v)), i)
    yield weight("attn_output", (heads * v, e), i)


def synthesize(
    arch: Architecture,
    file_type: str,
    name: str,
    parameter_count: int = 0,
    *,
    embedding_type: str | None = None,
    vision_bytes: int = 0,
) -> ModelSpec:
    """A `ModelSpec` with per-layer bytes as a GGUF of this architecture and file type holds them.

    `vision_bytes` are a vision encoder stored in the same file (gemma3); Ollama places them on
    the first GPU like a projector.
    """
    build = _Builder(arch, file_type_name(file_type))
    embedding = output = output_norm = other = 0
    for tensor in _outside_blocks(build, embedding_type):
        if tensor.name == "token_embd":
            embedding = tensor.bytes
        elif tensor.name == "output":
            output = tensor.bytes
        elif tensor.name == "output_norm":
            output_norm = tensor.bytes
        else:
            other += tensor.bytes
    # Blocks differ only where the quantizer gives some layers more bits; sum each kind once.
    # A block's index decides its signature only through its class, so that is worked out once
    # per class (from the class's first block) rather than per block.
    firsts, class_of_block = _layer_classes(arch.block_count, arch.leading_dense_block_count)
    sums: dict[tuple[object, ...], tuple[int, int]] = {}
    class_sums = []
    for i in firsts:
        signature = _block_signature(build, i)
        known = sums.get(signature)
        if known is None:
            block = list(_block(build, i))
            known = sums[signature] = (
                sum(t.bytes for t in block),
                sum(t.bytes for t in block if t.name.endswith("_exps")),
            )
        class_sums.append(known)
    layer_bytes = [class_sums[number][0] for number in class_of_block]
    expert_bytes = [class_sums[number][1] for number in class_of_block]
    if arch.tied_embeddings:
        output = embedding
    gate_exps = 0
    if arch.expert_count and arch.architecture in ("llama",):
        gate_exps = next(t.bytes for t in _block(build, 0) if t.name == "ffn_gate_exps")
    return ModelSpec(
        name=name,
        architecture=arch.architecture,
        block_count=arch.block_count,
        embedding_length=arch.embedding_length,
        head_count=(arch.head_count,) * arch.block_count,
        # As the GGUF metadata states them, which is what Ollama's estimate reads (for deepseek2's
        # latent attention that overstates the real cache, and Ollama plans with it all the same).
        head_count_kv=(arch.head_count_kv,) * arch.block_count,
        key_length=arch.head_dim_k,
        value_length=arch.head_dim_v,
        vocab_size=arch.vocab_size,
        context_length=arch.context_length,
        layer_bytes=tuple(layer_bytes),
        output_bytes=output_norm + output,
        embedding_bytes=embedding,
        file_type=file_type_name(file_type),
        parameter_count=parameter_count,
        source="catalog",
        projector_bytes=vision_bytes,
        sliding_window=arch.sliding_window,
        feed_forward_length=arch.feed_forward_length,
        expert_count=arch.expert_count,
        expert_used_count=arch.expert_used_count,
        ffn_gate_exps_bytes=gate_exps,
        expert_layer_bytes=tuple(expert_bytes) if arch.expert_count else (),
        other_bytes=other,
        tied_embeddings=arch.tied_embeddings,
    )
