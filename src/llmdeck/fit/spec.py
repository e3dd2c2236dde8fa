"""What the fit engine needs to know about a model, wherever the facts came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SpecSource = Literal["server", "store", "catalog"]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model file's shape and weights, as Ollama's estimator sees it.

    Byte figures follow Ollama's grouping of GGUF tensors: `layer_bytes[i]` is everything under
    `blk.i`; `output_bytes` is `output_norm` plus `output` (or `token_embd` when the output is
    tied to the embeddings); `embedding_bytes` is `token_embd`, which stays in system memory.
    """

    name: str
    architecture: str
    block_count: int
    embedding_length: int
    head_count: tuple[int, ...]
    head_count_kv: tuple[int, ...]
    key_length: int
    value_length: int
    vocab_size: int
    context_length: int
    layer_bytes: tuple[int, ...]
    output_bytes: int
    embedding_bytes: int
    file_type: str
    parameter_count: int
    source: SpecSource
    projector_bytes: int = 0
    sliding_window: int | None = None
    feed_forward_length: int = 0
    expert_count: int = 0
    expert_used_count: int = 0
    # Bytes of blk.0's merged expert gate (mixtral 8x22b style), used by the graph estimate.
    ffn_gate_exps_bytes: int = 0
    # Expert weights per layer; only `expert_used_count / expert_count` of them are read per token.
    expert_layer_bytes: tuple[int, ...] = ()
    # Weights outside blocks that are neither output nor embedding (rope tables, ...).
    other_bytes: int = 0
    is_embedding_model: bool = False
    tied_embeddings: bool = False

    def __post_init__(self) -> None:
        for field_name in ("head_count", "head_count_kv", "layer_bytes"):
            values = getattr(self, field_name)
            if len(values) != self.block_count:
                raise ValueError(
                    f"{self.name}: {field_name} has {len(values)} entries, expected {self.block_count}"
                )

    @property
    def head_count_max(self) -> int:
        return max(self.head_count, default=1)

    @property
    def head_count_min(self) -> int:
        return min(self.head_count, default=1)

    @property
    def head_count_kv_max(self) -> int:
        return max(self.head_count_kv, default=1)

    @property
    def head_count_kv_min(self) -> int:
        return min(self.head_count_kv, default=1)

    @property
    def embedding_head_count(self) -> int:
        """Ollama's `EmbeddingHeadCountMax`: embedding length over the smallest head count."""
        return self.embedding_length // self.head_count_min if self.head_count_min else 0

    @property
    def file_bytes(self) -> int:
        """Size of the weights as stored (the GGUF minus its header), vision weights included."""
        embedding = 0 if self.tied_embeddings else self.embedding_bytes
        return sum(self.layer_bytes) + self.output_bytes + embedding + self.other_bytes + self.projector_bytes

    @property
    def is_moe(self) -> bool:
        return self.expert_count > 0 and self.expert_used_count > 0

    @property
    def supports_flash_attention(self) -> bool:
        if self.is_embedding_model or self.architecture == "gemma2":
            return False
        return self.key_length != 0 and self.key_length == self.value_length

    @property
    def flash_attention_by_default(self) -> bool:
        """Architectures Ollama runs with flash attention on unless told otherwise."""
        return self.architecture in FLASH_ATTENTION_DEFAULT


FLASH_ATTENTION_DEFAULT = frozenset(
    {"bert", "gemma3", "gptoss", "gpt-oss", "mistral3", "olmo3", "qwen3", "qwen3moe", "qwen3vl", "qwen3vlmoe"}
)
