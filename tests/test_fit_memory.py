"""KV cache, compute graph and tensor sizes: worked examples from Ollama's and llama.cpp's figures."""

from __future__ import annotations

import pytest

from llmdeck.fit.memory import graph_sizes, kv_per_layer
from llmdeck.fit.quant import file_type_name, tensor_bytes
from llmdeck.fit.synth import Architecture, quant_type, synthesize, use_more_bits

MIB = 1024**2
GIB = 1024**3
LLAMA31_8B = Architecture("llama", 32, 4096, 14336, 32, 8, 128256, 131072)


def test_kv_cache_of_llama31_8b_at_4096_is_512_mib() -> None:
    spec = synthesize(LLAMA31_8B, "Q4_K_M", "llama3.1:8b")
    kv = kv_per_layer(spec, 4096, 1, "f16")
    assert sum(kv) == 512 * MIB
    assert kv[0] == 4096 * (128 + 128) * 8 * 2  # tokens x (K+V dims) x KV heads x f16: 128 KiB/token in all
    # Parallel slots multiply it; quantized types shrink it.
    assert sum(kv_per_layer(spec, 4096, 4, "f16")) == 2048 * MIB
    assert sum(kv_per_layer(spec, 4096, 1, "q8_0")) == 256 * MIB
    assert sum(kv_per_layer(spec, 4096, 1, "q4_0")) == 128 * MIB


def test_graph_of_llama31_8b_at_4096() -> None:
    spec = synthesize(LLAMA31_8B, "Q4_K_M", "llama3.1:8b")
    sizes = graph_sizes(spec, 4096, 512, 1, "f16", flash_attention=False)
    # 4b(1+4E+C(1+H)) with b=512, E=4096, C=4096, H=32
    assert sizes.full == 4 * 512 * (1 + 4 * 4096 + 4096 * 33) == 310_380_544  # 296.0 MiB
    # 4bE + 4b(E+V) + E*V*105/128: the vocabulary term dominates
    assert sizes.partial == 4 * 512 * 4096 + 4 * 512 * (4096 + 128256) + 4096 * 128256 * 105 // 128
    assert round(sizes.partial / MIB, 1) == 677.5


def test_unknown_architecture_uses_ollamas_fallback_graph() -> None:
    phi3 = Architecture("phi3", 32, 3072, 8192, 32, 32, 32064, 131072)
    spec = synthesize(phi3, "Q4_K_M", "phi3:3.8b")
    sizes = graph_sizes(spec, 2048, 512, 1, "f16", flash_attention=False)
    assert sizes.partial == sizes.full == (32 // 32) * sizes.kv_total // 6


def test_gemma3_sliding_layers_cache_only_the_window() -> None:
    gemma3 = Architecture("gemma3", 12, 2560, 10240, 8, 4, 262144, 131072, key_length=256, value_length=256,
                          sliding_window=1024)  # fmt: skip
    spec = synthesize(gemma3, "Q4_K_M", "gemma3:4b")
    kv = kv_per_layer(spec, 32768, 1, "f16")
    windowed = graph_sizes(spec, 32768, 512, 1, "f16", flash_attention=True).kv_per_layer
    assert windowed[5] == kv[5] and windowed[11] == kv[11]  # every 6th layer is global
    assert windowed[0] == (1024 + 512) * 512 * 4 * 2
    assert sum(windowed) < sum(kv) / 4


@pytest.mark.parametrize(
    ("file_type", "gib"),
    [
        # llama.cpp tools/quantize: file sizes of Llama-3-8B per type (GiB)
        ("Q2_K", 2.96),
        ("Q3_K_M", 3.74),
        ("Q4_0", 4.34),
        ("Q4_K_S", 4.37),
        ("Q4_K_M", 4.58),
        ("Q5_K_M", 5.33),
        ("Q6_K", 6.14),
        ("Q8_0", 7.96),
        ("F16", 14.96),
    ],
)
def test_synthesized_llama3_8b_matches_llama_cpps_file_sizes(file_type: str, gib: float) -> None:
    size = synthesize(LLAMA31_8B, file_type, "llama3:8b").file_bytes / GIB
    assert size == pytest.approx(gib, rel=0.005)


def test_quantizer_rules_that_cost_bytes() -> None:
    assert quant_type("output", "Q4_K_M", 0, 32, 4096, LLAMA31_8B) == "Q6_K"
    assert quant_type("output", "Q8_0", 0, 32, 4096, LLAMA31_8B) == "Q8_0"
    assert quant_type("attn_v", "Q4_K_M", 0, 32, 4096, LLAMA31_8B) == "Q6_K"
    assert quant_type("attn_v", "Q4_K_M", 5, 32, 4096, LLAMA31_8B) == "Q4_K"
    assert [use_more_bits(i, 32) for i in range(8)] == [True, True, True, True, False, False, True, False]
    # A row of 896 (qwen2.5:0.5b) is not a multiple of 256: k-quants fall back.
    assert quant_type("attn_q", "Q4_K_M", 3, 24, 896, LLAMA31_8B) == "Q5_0"
    assert quant_type("ffn_down", "Q4_K_M", 0, 24, 896, LLAMA31_8B) == "Q8_0"


def test_tensor_bytes_follow_ggml_blocks() -> None:
    assert tensor_bytes((4096, 4096), "Q4_0") == 4096 * 4096 // 32 * 18
    assert tensor_bytes((4096, 4096), "Q4_K") == 4096 * 4096 // 256 * 144
    assert tensor_bytes((4096,), "F32") == 16384
    assert file_type_name("q4_K_M") == "Q4_K_M"
    assert file_type_name("fp16") == "F16"
    assert file_type_name(15) == "Q4_K_M"
    with pytest.raises(ValueError, match="unknown quantization"):
        file_type_name("q9_z")
