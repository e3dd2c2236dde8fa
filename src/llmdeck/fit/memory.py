"""The sizes Ollama's estimator works with: KV cache per layer and compute-graph sizes.

Reproduces `GraphSize` in Ollama's `fs/ggml/ggml.go` (v0.12.10 and later) with the same integer
arithmetic, so that the estimate matches the `memory.required.*` figures in Ollama's log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmdeck.fit.spec import ModelSpec

KvCacheType = Literal["f16", "q8_0", "q4_0"]
MIB = 1024**2

# What Ollama's estimator counts per cached element (`kvCacheBytesPerElement`)...
BYTES_PER_KV_ELEMENT: dict[str, float] = {"f16": 2.0, "q8_0": 1.0, "q4_0": 0.5, "f32": 4.0}
# ...and what ggml stores: quantized blocks carry a scale, 34 bytes per 32 values for q8_0 and 18
# for q4_0, so a quantized cache really takes 6% (q8_0) or 12.5% (q4_0) more than Ollama plans.
STORED_BYTES_PER_KV_ELEMENT: dict[str, float] = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "f32": 4.0}
GEMMA3_GLOBAL_EVERY = 6  # every sixth gemma3 layer attends over the whole context
GPT_OSS_SLIDING_WINDOW = 4096


@dataclass(frozen=True, slots=True)
class GraphSizes:
    kv_per_layer: tuple[int, ...]
    partial: int
    full: int

    @property
    def kv_total(self) -> int:
        return sum(self.kv_per_layer)


def kv_per_layer(
    spec: ModelSpec, num_ctx: int, parallel: int, kv_type: str, *, as_stored: bool = False
) -> list[int]:
    """KV cache bytes of each layer for `parallel` slots of `num_ctx` tokens, as Ollama's estimate
    counts them, or `as_stored` by ggml."""
    context = num_ctx * parallel
    bpe = (STORED_BYTES_PER_KV_ELEMENT if as_stored else BYTES_PER_KV_ELEMENT)[kv_type]
    per_token = spec.key_length + spec.value_length

    def layer(heads: int, heads_kv: int) -> int:
        return int(float(context * per_token * heads_kv) * bpe) if heads > 0 and heads_kv > 0 else 0

    heads, heads_kv = spec.head_count, spec.head_count_kv
    alike = heads and len(heads) == len(heads_kv) and heads.count(heads[0]) == len(heads)
    if alike and heads_kv.count(heads_kv[0]) == len(heads_kv):
        return [layer(heads[0], heads_kv[0])] * len(heads)  # most models: every layer alike
    return [layer(h, kv) for h, kv in zip(heads, heads_kv, strict=True)]


def graph_sizes(
    spec: ModelSpec,
    num_ctx: int,
    num_batch: int,
    parallel: int,
    kv_type: str,
    flash_attention: bool,
) -> GraphSizes:
    """KV per layer and the compute graph for partial and full offload, in bytes."""
    batch = min(num_ctx, num_batch)
    context = num_ctx * parallel
    embedding = spec.embedding_length
    heads = spec.head_count_max
    heads_kv = spec.head_count_kv_max
    vocab = spec.vocab_size
    embedding_heads = spec.embedding_head_count
    heads_k = spec.key_length
    kv = kv_per_layer(spec, num_ctx, parallel, kv_type)
    default_kv_total = sum(kv)
    full = partial = 0
    arch = spec.architecture

    if arch in ("llama", "llama4"):
        full = max(4 * batch * (1 + 4 * embedding + context * (1 + heads)), 4 * batch * (embedding + vocab))
        partial = 4 * batch * embedding + max(
            4 * batch * (1 + embedding + max(context, embedding))
            + embedding * embedding * 9 // 16
            + 4 * context * (batch * heads + embedding_heads * heads_kv),
            4 * batch * (embedding + vocab) + embedding * vocab * 105 // 128,
        )
        if spec.ffn_gate_exps_bytes:
            ff = spec.feed_forward_length
            partial = max(
                3 * spec.ffn_gate_exps_bytes
                + 4 * batch * (2 * ff + heads_kv + embedding + context + embedding_heads * heads_kv),
                4
                * (
                    context * batch * heads
                    + context * embedding_heads * heads_kv
                    + batch * 1024
                    + embedding_heads * heads_kv * batch
                ),
            )
    elif arch in ("gemma", "gemma2", "gemma3", "gemma3n"):
        full = max(
            4 * batch * (embedding + vocab),
            4 * batch * (2 + context + context * heads + 2 * embedding + 2 * heads_k * heads),
        )
        partial = max(
            4 * embedding * batch + embedding * vocab * 105 // 128 + 4 * vocab * batch,
            4 * batch * (2 * embedding + 1 + 2 * heads_k * heads + context + context * heads)
            + 4 * heads_k * context * 8
            + embedding * heads_k * heads * 9 // 16,
        )
        if arch == "gemma3n":
            full *= 4
            partial *= 4
        if arch == "gemma3" and spec.sliding_window:
            window = parallel * spec.sliding_window + batch
            bpe = BYTES_PER_KV_ELEMENT[kv_type]
            for index in range(len(kv)):
                if (index + 1) % GEMMA3_GLOBAL_EVERY != 0:
                    kv[index] = int(float(window * (spec.key_length + spec.value_length) * heads_kv) * bpe)
    elif arch == "command-r":
        full = max(4 * batch * (embedding + vocab), 4 * batch * (2 + 4 * embedding + context * (1 + heads)))
        partial = max(
            4 * batch * (embedding + vocab) + embedding * vocab * 105 // 128,
            4 * batch * (1 + 2 * embedding + context * (1 + heads))
            + 4 * embedding * context
            + embedding * embedding * 9 // 16,
        )
    elif arch == "qwen2":
        full = max(
            4 * batch * (embedding + vocab), 4 * batch * (1 + 2 * embedding + context + context * heads)
        )
        partial = max(
            4 * batch * (embedding + vocab) + embedding * vocab * 105 // 128,
            4 * (batch * (1 + 2 * embedding + context * (1 + heads)) + embedding * (1 + context)),
        )
    elif arch == "phi2":
        full = max(
            4 * batch * (embedding + vocab), 4 * batch * (1 + 4 * embedding + context + context * heads)
        )
        partial = max(
            4 * batch * (2 * embedding + vocab) + embedding * vocab * 105 // 128,
            4 * batch * (2 + 3 * embedding + context + context * heads),
        )
    elif arch == "stablelm":
        full = 4 * batch * (context * (1 + heads) + 3 * embedding + 2)
        partial = max(4 * batch * (vocab + 2 * embedding), full)
    elif arch == "deepseek2":
        full = max(
            4 * batch * (3 * embedding + vocab),
            4 * batch * (3 * embedding + 2 + context * (1 + heads_kv) + 2 * heads_k * heads_kv),
        )
        partial = max(
            4 * batch * (3 * embedding + vocab) + embedding * vocab * 105 // 128,
            4 * batch * (2 * embedding + 1 + 2 * heads_k * heads_kv + context + context * heads_kv)
            + 4 * heads_k * context * heads_kv
            + embedding * heads_k * heads_kv * 9 // 16,
        )
    elif arch in ("gptoss", "gpt-oss"):
        bpe = BYTES_PER_KV_ELEMENT[kv_type]
        for index in range(len(kv)):
            per_token = int(float((spec.key_length + spec.value_length) * heads_kv) * bpe)
            kv[index] = per_token * (parallel * GPT_OSS_SLIDING_WINDOW + batch if index % 2 == 0 else context)
        partial = 2 * spec.head_count_max // max(spec.head_count_kv_min, 1) * default_kv_total // 6
        if flash_attention:
            partial = (4 * parallel + (context >> 10) + 110) * MIB

    kv_total = sum(kv)
    if partial == 0:
        # Ollama's fallback for architectures without a formula (phi3, mistral3, qwen3, ...).
        gqa = spec.head_count_max // max(spec.head_count_kv_min, 1)
        partial = gqa * kv_total // 6
    if full == 0:
        full = partial
    return GraphSizes(kv_per_layer=tuple(kv), partial=partial, full=full)
