"""Model facts read back from real GGUF files and from the server's /api/show."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf_factory import write_gguf

from llmdeck.fit.facts import FactsError, TensorInfo, spec_from_metadata
from llmdeck.fit.gguf_file import GgufError, read_gguf
from llmdeck.fit.synth import Architecture, synthesize

TINY_LLAMA = Architecture("llama", 4, 256, 512, 4, 2, 320, 2048)
TINY_QWEN2 = Architecture("qwen2", 3, 256, 768, 8, 2, 300, 4096)
TINY_GEMMA3 = Architecture("gemma3", 6, 256, 512, 4, 1, 262, 8192, key_length=128, value_length=128,
                           sliding_window=512, tied_embeddings=True)  # fmt: skip
TINY_MOE = Architecture("qwen3moe", 2, 256, 512, 4, 2, 300, 4096, expert_count=8, expert_used_count=2,
                        expert_feed_forward_length=256)  # fmt: skip

LAYOUT_FIELDS = (
    "architecture", "block_count", "embedding_length", "head_count", "head_count_kv", "key_length",
    "value_length", "vocab_size", "context_length", "layer_bytes", "output_bytes", "embedding_bytes",
    "file_type", "sliding_window", "expert_count", "expert_used_count", "expert_layer_bytes",
    "tied_embeddings",
)  # fmt: skip


@pytest.mark.parametrize(
    "arch", [TINY_LLAMA, TINY_QWEN2, TINY_GEMMA3, TINY_MOE], ids=lambda a: a.architecture
)
@pytest.mark.parametrize("file_type", ["Q4_K_M", "Q8_0", "F16", "Q4_0"])
def test_a_written_gguf_reads_back_as_the_catalog_spec(
    tmp_path: Path, arch: Architecture, file_type: str
) -> None:
    path = write_gguf(tmp_path / "model.gguf", arch, file_type)
    metadata, tensors = read_gguf(path)
    from_file = spec_from_metadata("tiny", metadata, tensors, "store")
    from_catalog = synthesize(arch, file_type, "tiny")
    for field in LAYOUT_FIELDS:
        assert getattr(from_file, field) == getattr(from_catalog, field), field
    assert from_file.source == "store"
    # The weights in the file are what the spec counts (the rest is header and metadata).
    assert 0 < path.stat().st_size - from_file.file_bytes < 64 * 1024


def test_vocabulary_size_from_the_metadata_key_when_tokens_are_absent(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "model.gguf", TINY_LLAMA, "Q8_0", with_tokens=False)
    metadata, tensors = read_gguf(path)
    assert spec_from_metadata("tiny", metadata, tensors, "store").vocab_size == 320


def test_show_style_tensor_table_with_type_names() -> None:
    """/api/show?verbose lists tensors with type names rather than ids."""
    metadata = {
        "general.architecture": "llama",
        "general.file_type": 7,
        "llama.block_count": 1,
        "llama.embedding_length": 256,
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": [2],
        "llama.context_length": 4096,
        "llama.vocab_size": 100,
    }
    tensors = [
        TensorInfo("token_embd.weight", "Q8_0", (256, 100)),
        TensorInfo("output_norm.weight", "F32", (256,)),
        TensorInfo("blk.0.attn_q.weight", "Q8_0", (256, 256)),
    ]
    spec = spec_from_metadata("x", metadata, tensors, "server")
    assert spec.layer_bytes == (256 * 256 // 32 * 34,)
    assert spec.tied_embeddings
    assert spec.output_bytes == 1024 + 256 * 100 // 32 * 34
    assert spec.head_count_kv == (2,)


def test_missing_metadata_is_named() -> None:
    with pytest.raises(FactsError, match=r"general\.architecture"):
        spec_from_metadata("x", {}, [], "server")
    with pytest.raises(FactsError, match=r"llama\.block_count"):
        spec_from_metadata("x", {"general.architecture": "llama", "general.file_type": 15}, [], "server")


def test_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_bytes(b"this is not a model")
    with pytest.raises(GgufError, match="not a readable GGUF"):
        read_gguf(path)
