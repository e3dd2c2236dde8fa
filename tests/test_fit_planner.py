"""The planner against arithmetic done by hand from Ollama's estimator, and its invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmdeck.fit.planner import (
    CUDA_MINIMUM_MEMORY,
    GpuDevice,
    PlanOptions,
    SystemMemory,
    plan,
    processor_split,
)
from llmdeck.fit.spec import ModelSpec
from llmdeck.fit.synth import Architecture, synthesize

MIB = 1024**2
GIB = 1024**3
PLENTY = SystemMemory(total_bytes=64 * GIB, free_bytes=60 * GIB, free_swap_bytes=8 * GIB)


def uniform(layers: int = 10, weights_mib: int = 98, output_mib: int = 50) -> ModelSpec:
    """A model whose numbers are easy to follow: 8 heads of 64, so 2 MiB of KV per layer at 1024."""
    return ModelSpec(
        name="toy",
        architecture="toy",
        block_count=layers,
        embedding_length=512,
        head_count=(8,) * layers,
        head_count_kv=(8,) * layers,
        key_length=64,
        value_length=64,
        vocab_size=1000,
        context_length=8192,
        layer_bytes=(weights_mib * MIB,) * layers,
        output_bytes=output_mib * MIB,
        embedding_bytes=output_mib * MIB,
        file_type="F16",
        parameter_count=0,
        source="catalog",
    )


TOY_GRAPH = 20 * MIB // 6  # generic fallback: GQA 1 x 20 MiB of KV / 6
OPTIONS = PlanOptions(num_ctx=1024)


def gpu(free_mib: float, name: str = "NVIDIA GeForce RTX 3060") -> GpuDevice:
    return GpuDevice(name=name, total_bytes=12 * GIB, free_bytes=int(free_mib * MIB))


def test_processor_column_like_ollama_ps() -> None:
    assert processor_split(100, 0) == "100% CPU"
    assert processor_split(100, 100) == "100% GPU"
    assert processor_split(100, 101) == "Unknown"
    assert processor_split(1000, 420) == "58%/42% CPU/GPU"
    assert processor_split(3, 1) == "67%/33% CPU/GPU"


def test_everything_fits_on_one_gpu() -> None:
    result = plan(uniform(), [gpu(4096)], PLENTY, OPTIONS)
    # 457 MiB minimum + the spare layer (100) + 10 layers (1000) + output (50) + graph
    expected = CUDA_MINIMUM_MEMORY + 100 * MIB + 1000 * MIB + 50 * MIB + TOY_GRAPH
    assert (result.num_gpu, result.layers_total) == (11, 11)
    assert result.size_vram == result.size == expected
    assert result.processor == "100% GPU"
    assert result.verdict == "gpu"


def test_partial_offload_places_as_many_layers_as_fit() -> None:
    # Room for the minimum, the spare layer, the graph and 4.6 layers: 4 layers go, 6 and the output stay.
    free = 457 + 100 + TOY_GRAPH / MIB + 460
    result = plan(uniform(), [gpu(free)], PLENTY, OPTIONS)
    assert result.num_gpu == 4
    assert result.size_vram == CUDA_MINIMUM_MEMORY + 100 * MIB + 4 * 100 * MIB + TOY_GRAPH
    assert result.size == result.size_vram + 6 * 100 * MIB + 50 * MIB
    assert result.verdict == "partial"
    assert result.processor == "40%/60% CPU/GPU"  # 650 of 1610 MiB on the CPU


def test_too_little_memory_for_any_layer_runs_on_the_cpu() -> None:
    # The rule: free must exceed minimum + graph + 2 spare layers before a GPU gets anything.
    free = 457 + TOY_GRAPH / MIB + 200 - 1
    result = plan(uniform(), [gpu(free)], PLENTY, OPTIONS)
    assert result.num_gpu == 0
    assert result.size_vram == 0
    assert result.size == 10 * 100 * MIB + 50 * MIB  # weights + KV + output, no graph
    assert result.verdict == "cpu"
    assert result.processor == "100% CPU"
    assert any("even one layer" in note for note in result.notes)


def test_not_enough_ram_for_the_cpu_share_does_not_fit() -> None:
    small = SystemMemory(total_bytes=2 * GIB, free_bytes=500 * MIB, free_swap_bytes=0)
    assert plan(uniform(), [], small, OPTIONS).verdict == "none"
    free = 457 + 100 + TOY_GRAPH / MIB + 460
    assert plan(uniform(), [gpu(free)], small, OPTIONS).verdict == "none"  # 650 MiB must stay in RAM


def test_two_gpus_share_the_layers_round_robin() -> None:
    # Each holds about 7 layers, so the model needs both.
    result = plan(uniform(), [gpu(1300), gpu(1300, "NVIDIA GeForce RTX 3060 #2")], PLENTY, OPTIONS)
    assert result.layers_per_gpu == (6, 5)  # 5 repeating layers each, the output on the first
    assert result.num_gpu == 11
    assert all(used <= 1300 * MIB for used in result.bytes_per_gpu)
    # Several GPUs always use the partial graph, on each of them.
    assert result.bytes_per_gpu[1] == CUDA_MINIMUM_MEMORY + 100 * MIB + 5 * 100 * MIB + TOY_GRAPH


def test_a_model_that_fits_one_gpu_stays_on_the_one_with_most_free_memory() -> None:
    result = plan(uniform(), [gpu(3000), gpu(4096, "bigger")], PLENTY, OPTIONS)
    assert result.layers_per_gpu == (0, 11)
    assert result.bytes_per_gpu[0] == 0


def test_a_layer_count_left_out_puts_the_output_in_system_memory() -> None:
    result = plan(uniform(), [gpu(4096)], PLENTY, PlanOptions(num_ctx=1024, num_gpu=10))
    assert result.num_gpu == 10
    assert result.size - result.size_vram == 50 * MIB  # the output layer
    assert result.verdict == "partial"


def test_more_layers_than_fit_are_loaded_anyway_with_a_warning() -> None:
    free = 457 + 100 + TOY_GRAPH / MIB + 460  # 4 layers fit
    result = plan(uniform(), [gpu(free)], PLENTY, PlanOptions(num_ctx=1024, num_gpu=7))
    assert result.num_gpu == 7
    assert result.size_vram > free * MIB
    assert any("may run out of VRAM" in note for note in result.notes)


def test_gpu_overhead_is_reserved_on_every_gpu() -> None:
    free = 457 + 100 + TOY_GRAPH / MIB + 460
    assert plan(uniform(), [gpu(free)], PLENTY, OPTIONS).num_gpu == 4
    reserved = PlanOptions(num_ctx=1024, gpu_overhead_bytes=200 * MIB)
    assert plan(uniform(), [gpu(free)], PLENTY, reserved).num_gpu == 2


def test_swap_counts_only_when_ollama_falls_back_to_the_cpu() -> None:
    memory = SystemMemory(total_bytes=4 * GIB, free_bytes=600 * MIB, free_swap_bytes=8 * GIB)
    assert plan(uniform(), [gpu(300)], memory, OPTIONS).verdict == "cpu"  # no room on the GPU
    assert plan(uniform(), [], memory, OPTIONS).verdict == "none"  # no GPU: free RAM alone


def test_num_gpu_asks_for_a_layer_count() -> None:
    result = plan(uniform(), [gpu(4096)], PLENTY, PlanOptions(num_ctx=1024, num_gpu=3))
    assert result.num_gpu == 3
    assert plan(uniform(), [gpu(4096)], PLENTY, PlanOptions(num_ctx=1024, num_gpu=0)).verdict == "cpu"


def test_metal_has_no_partial_graph_penalty_and_respects_unified_memory() -> None:
    spec = synthesize(Architecture("llama", 32, 4096, 14336, 32, 8, 128256, 131072), "Q4_K_M", "llama3.1:8b")
    memory = SystemMemory(32 * GIB, 20 * GIB)
    metal = GpuDevice("Apple M2 Pro (19-core GPU)", 21 * GIB, 21 * GIB, library="metal")
    assert plan(spec, [metal], memory, PlanOptions(num_ctx=4096)).graph_bytes == 310_380_544  # 296 MiB
    # Partly offloaded, CUDA pays the partial graph (677.5 MiB) and Metal still the full one.
    small_metal = GpuDevice("Apple M1 (8-core GPU)", 3 * GIB, 3 * GIB, library="metal")
    small_cuda = GpuDevice("NVIDIA GeForce RTX 3050", 3 * GIB, 3 * GIB)
    on_metal = plan(spec, [small_metal], memory, PlanOptions(num_ctx=4096))
    on_cuda = plan(spec, [small_cuda], memory, PlanOptions(num_ctx=4096))
    assert on_metal.verdict == on_cuda.verdict == "partial"
    assert on_metal.graph_bytes == 310_380_544
    assert on_cuda.graph_bytes == 4 * 512 * 4096 + 4 * 512 * (4096 + 128256) + 4096 * 128256 * 105 // 128


def test_context_is_clamped_to_what_the_model_supports() -> None:
    result = plan(uniform(), [gpu(4096)], PLENTY, PlanOptions(num_ctx=100_000))
    assert result.num_ctx == 8192
    assert any("clamps" in note for note in result.notes)


def test_quantized_kv_needs_flash_attention() -> None:
    spec = uniform()
    without = plan(spec, [gpu(4096)], PLENTY, PlanOptions(num_ctx=1024, kv_cache_type="q8_0"))
    assert without.kv_cache_type == "f16"
    assert any("needs flash attention" in note for note in without.notes)
    with_fa = plan(
        spec, [gpu(4096)], PLENTY, PlanOptions(num_ctx=1024, kv_cache_type="q8_0", flash_attention=True)
    )
    assert with_fa.kv_cache_type == "q8_0"
    assert with_fa.kv_cache_bytes == without.kv_cache_bytes // 2


@pytest.mark.parametrize("regime", ["layout", "fit"])
def test_newer_regimes_need_no_spare_layer(regime: str) -> None:
    spec = uniform()
    classic = plan(spec, [gpu(1500)], PLENTY, OPTIONS)
    newer = plan(spec, [gpu(1500)], PLENTY, PlanOptions(num_ctx=1024, regime=regime))  # type: ignore[arg-type]
    assert newer.regime == regime
    if regime == "layout":
        assert newer.num_gpu > classic.num_gpu  # no spare layer held back
    else:
        assert newer.num_gpu < classic.num_gpu  # llama.cpp keeps 1 GiB free per device


free_mib = st.integers(min_value=0, max_value=6000)


@settings(max_examples=150, deadline=None)
@given(free=free_mib, more=st.integers(min_value=0, max_value=4000))
def test_more_free_vram_never_means_fewer_layers(free: int, more: int) -> None:
    spec = uniform()
    assert (
        plan(spec, [gpu(free + more)], PLENTY, OPTIONS).num_gpu
        >= plan(spec, [gpu(free)], PLENTY, OPTIONS).num_gpu
    )


@settings(max_examples=150, deadline=None)
@given(free_a=free_mib, free_b=free_mib)
def test_vram_used_never_exceeds_free_vram(free_a: int, free_b: int) -> None:
    gpus = [gpu(free_a), gpu(free_b, "second")]
    result = plan(uniform(), gpus, PLENTY, OPTIONS)
    for used, device in zip(result.bytes_per_gpu, gpus, strict=True):
        assert used <= device.free_bytes
    assert result.size_vram <= sum(device.free_bytes for device in gpus)


@settings(max_examples=100, deadline=None)
@given(free=free_mib, ctx=st.sampled_from([512, 1024, 2048, 4096, 8192]), factor=st.sampled_from([2, 4]))
def test_more_context_never_means_more_layers(free: int, ctx: int, factor: int) -> None:
    spec = uniform(weights_mib=40)
    small = plan(spec, [gpu(free)], PLENTY, PlanOptions(num_ctx=ctx))
    large = plan(spec, [gpu(free)], PLENTY, PlanOptions(num_ctx=min(ctx * factor, 8192)))
    assert large.num_gpu <= small.num_gpu


@settings(max_examples=100, deadline=None)
@given(free=free_mib)
def test_zero_layer_rule(free: int) -> None:
    spec = uniform()
    result = plan(spec, [gpu(free)], PLENTY, OPTIONS)
    spare = 100 * MIB
    if free * MIB < CUDA_MINIMUM_MEMORY + TOY_GRAPH + 2 * spare:
        assert result.num_gpu == 0 and result.size_vram == 0
    else:
        assert result.num_gpu >= 1


def test_llama31_70b_on_a_24_gb_card_worked_by_hand() -> None:
    """llama3.1:70b Q4_K_M at 4096 on an RTX 4090 with 22.9 GiB free, Ollama 0.12.10.

    Layers: 40 of 544,079,872 bytes (attn_v and ffn_down in Q6_K) and 40 of 482,410,496, each
    with 16 MiB of KV. Spare layer (blk.0, a big one) 560,857,088; graph partial 1,158,103,040,
    full 612,370,432; output 861,913,088. Start: 457 MiB + spare = 1,040,056,320. Room for
    layers: free - start - max(graph) = 22,390,595,174 bytes. From layer 79 down: 10 big
    (5,608,570,880), then ten (big, small, small) triples (15,592,325,120), then one big and one
    small (1,060,044,800): 42 layers, 129,654,374 bytes left, too few for the next small layer
    or the output. VRAM = start + 22,260,940,800 + partial graph = 24,459,100,160. On the CPU:
    38 layers + output = 21,002,764,288. Size 45,461,864,448; CPU share 46.2% -> "46%/54% CPU/GPU".
    """
    spec = synthesize(Architecture("llama", 80, 8192, 28672, 64, 8, 128256, 131072), "Q4_K_M", "llama3.1:70b")
    rtx4090 = GpuDevice("NVIDIA GeForce RTX 4090", 24 * GIB, int(22.9 * GIB))
    result = plan(spec, [rtx4090], PLENTY, PlanOptions(num_ctx=4096))
    assert (result.num_gpu, result.layers_total) == (42, 81)
    assert result.size_vram == 24_459_100_160
    assert result.size == 45_461_864_448
    assert result.processor == "46%/54% CPU/GPU"
