"""The fit engine's shortcuts give exactly what the plain computation they stand for gives.

`llmdeck fit` plans the whole catalog (hundreds of models) in one go, and the app does the same
for its suggestions, so a few steps take shortcuts: the catalog indexes its tags, a synthesized
model sums each kind of block once, the KV cache of layers that are all alike is worked out once,
and the placement stops at the first layer that no GPU takes. Each is checked here against the
straightforward form, written out as it was before the shortcut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmdeck.fit.catalog import CatalogEntry, load_catalog
from llmdeck.fit.memory import (
    BYTES_PER_KV_ELEMENT,
    STORED_BYTES_PER_KV_ELEMENT,
    GraphSizes,
    graph_sizes,
    kv_per_layer,
)
from llmdeck.fit.planner import GpuDevice, GpuLibrary, PlanOptions, _graphs, _place_estimator, _Placement
from llmdeck.fit.quant import FILE_TYPE_IDS
from llmdeck.fit.spec import ModelSpec
from llmdeck.fit.speed import bytes_read_per_layer
from llmdeck.fit.synth import _block, _Builder

MIB = 1024**2
GIB = 1024**3
# Every quantization the quantizer's rules treat differently, on top of each size's published ones.
EXTRA_QUANTS = ("Q2_K", "Q2_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_M", "Q8_0", "F16")


def _resolve_by_scan(entries: Sequence[CatalogEntry], text: str) -> tuple[CatalogEntry, str, str] | None:
    for entry in entries:
        for quant, known in entry.tags.items():
            if str(known["tag"]).lower() == text.lower():
                return entry, quant, str(known["tag"])
    return None


def test_every_published_tag_resolves_as_a_scan_of_the_catalog_finds_it() -> None:
    catalog = load_catalog()
    for entry in catalog.entries:
        for known in entry.tags.values():
            tag = str(known["tag"])
            for typed in (tag, tag.upper(), f"  {tag} "):
                assert catalog.resolve(typed) == _resolve_by_scan(catalog.entries, typed.strip())


def _catalog_models() -> list[tuple[CatalogEntry, str]]:
    return [
        (entry, quant)
        for entry in load_catalog().entries
        for quant in dict.fromkeys([*entry.tags, *EXTRA_QUANTS])
        if quant in FILE_TYPE_IDS
    ]


@pytest.mark.parametrize("entry", load_catalog().entries, ids=lambda entry: f"{entry.family}:{entry.size}")
def test_synthesized_layers_are_the_sums_of_each_blocks_own_tensors(entry: CatalogEntry) -> None:
    for quant in dict.fromkeys([*entry.tags, *EXTRA_QUANTS]):
        spec = entry.spec(quant)
        build = _Builder(entry.architecture, spec.file_type)
        blocks = [list(_block(build, i)) for i in range(entry.architecture.block_count)]
        assert spec.layer_bytes == tuple(sum(t.bytes for t in block) for block in blocks), quant
        experts = tuple(sum(t.bytes for t in block if t.name.endswith("_exps")) for block in blocks)
        assert spec.expert_layer_bytes == (experts if entry.architecture.expert_count else ()), quant


def _kv_by_layer(spec: ModelSpec, num_ctx: int, parallel: int, kv_type: str, as_stored: bool) -> list[int]:
    context = num_ctx * parallel
    bpe = (STORED_BYTES_PER_KV_ELEMENT if as_stored else BYTES_PER_KV_ELEMENT)[kv_type]
    per_token = spec.key_length + spec.value_length
    return [
        int(float(context * per_token * heads_kv) * bpe) if heads > 0 and heads_kv > 0 else 0
        for heads, heads_kv in zip(spec.head_count, spec.head_count_kv, strict=True)
    ]


def _spec(head_count: Sequence[int], head_count_kv: Sequence[int], layer_mib: Sequence[int]) -> ModelSpec:
    layers = len(layer_mib)
    return ModelSpec(
        name="toy",
        architecture="llama",
        block_count=layers,
        embedding_length=4096,
        head_count=tuple(head_count),
        head_count_kv=tuple(head_count_kv),
        key_length=128,
        value_length=128,
        vocab_size=32000,
        context_length=131072,
        layer_bytes=tuple(size * MIB for size in layer_mib),
        output_bytes=300 * MIB,
        embedding_bytes=300 * MIB,
        file_type="Q4_K_M",
        parameter_count=8_000_000_000,
        source="catalog",
    )


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 40).flatmap(
        lambda layers: st.tuples(
            st.lists(st.sampled_from([0, 8, 32]), min_size=layers, max_size=layers),
            st.lists(st.sampled_from([0, 1, 8]), min_size=layers, max_size=layers),
        )
    ),
    st.sampled_from([512, 4096, 32768]),
    st.integers(1, 4),
    st.sampled_from(["f16", "q8_0", "q4_0"]),
    st.booleans(),
    st.booleans(),
)
def test_kv_cache_per_layer_matches_the_layer_by_layer_sum(
    heads: tuple[list[int], list[int]], num_ctx: int, parallel: int, kv_type: str, stored: bool, alike: bool
) -> None:
    head_count, head_count_kv = heads
    if alike:  # most models: every layer has the same heads
        head_count, head_count_kv = [head_count[0]] * len(head_count), [head_count_kv[0]] * len(head_count)
    spec = _spec(head_count, head_count_kv, [100] * len(head_count))
    expected = _kv_by_layer(spec, num_ctx, parallel, kv_type, stored)
    assert kv_per_layer(spec, num_ctx, parallel, kv_type, as_stored=stored) == expected


@pytest.mark.parametrize("depth", [1, 512, 4096, 40_000])
def test_bytes_read_per_layer_matches_the_layer_by_layer_sum(depth: int) -> None:
    for entry, quant in _catalog_models()[::7]:
        spec = entry.spec(quant)
        kv = _kv_by_layer(spec, max(depth, 1), 1, "f16", False)
        expected = []
        for index, weights in enumerate(spec.layer_bytes):
            if spec.is_moe and spec.expert_layer_bytes:
                experts = spec.expert_layer_bytes[index]
                weights = weights - experts + experts * spec.expert_used_count // spec.expert_count
            read = kv[index]
            window = spec.sliding_window
            if window and depth > window and spec.architecture in ("gemma3", "gptoss", "gpt-oss"):
                read = read * window // depth
            expected.append(weights + read)
        assert bytes_read_per_layer(spec, depth) == expected, spec.name


def _place_every_layer(
    spec: ModelSpec, gpus: Sequence[GpuDevice], sizes: GraphSizes, options: PlanOptions, force: bool = False
) -> _Placement:
    """Ollama's `estimateGPULayers` as the planner did it before the shortcut: every layer tried."""
    overhead = options.gpu_overhead_bytes
    graph_partial, graph_full = _graphs(gpus, sizes)
    graph_max = max(graph_partial, graph_full)
    blocks = spec.block_count
    kv = sizes.kv_per_layer
    spare_layer = (spec.layer_bytes[0] + kv[0]) if blocks else 0
    projector = spec.projector_bytes

    counts = [0] * len(gpus)
    allocations = [0] * len(gpus)
    with_space: list[int] = []
    for index, gpu in enumerate(gpus):
        first_overhead = projector if not with_space else 0
        needed = overhead + first_overhead + graph_max + gpu.minimum_memory + 2 * spare_layer
        if gpu.free_bytes < needed:
            continue
        with_space.append(index)
        allocations[index] += gpu.minimum_memory + spare_layer
    if with_space:
        allocations[with_space[0]] += projector

    layer_count = 0
    overflow = 0
    for layer in range(blocks - 1, -1, -1):
        layer_size = spec.layer_bytes[layer] + kv[layer]
        if options.num_gpu >= 0 and layer_count >= options.num_gpu:
            overflow += layer_size
            continue
        for remaining in range(len(with_space), 0, -1):
            slot = layer % remaining
            gpu_index = with_space[slot]
            used = allocations[gpu_index] + graph_max
            if force or gpus[gpu_index].free_bytes > overhead + used + layer_size:
                allocations[gpu_index] += layer_size
                counts[gpu_index] += 1
                layer_count += 1
                break
            del with_space[slot]
        if not with_space:
            overflow += layer_size
    fully_loaded = layer_count >= blocks

    output = spec.output_bytes
    if output > 0:
        if options.num_gpu < 0 or layer_count < options.num_gpu:
            for remaining in range(len(with_space), 0, -1):
                gpu_index = with_space[layer_count % remaining]
                used = allocations[gpu_index] + graph_max
                if force or gpus[gpu_index].free_bytes > overhead + used + output:
                    allocations[gpu_index] += output
                    counts[gpu_index] += 1
                    layer_count += 1
                    break
        if layer_count < blocks + 1:
            fully_loaded = False
            overflow += output

    graph = graph_full if fully_loaded else graph_partial
    for index in range(len(gpus)):
        if counts[index] > 0:
            allocations[index] += graph
    return _Placement(counts, allocations, overflow, graph)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.integers(20, 900), min_size=1, max_size=60),
    st.lists(st.integers(0, 24 * 1024), min_size=0, max_size=4),
    st.integers(-1, 70),
    st.sampled_from([0, 512 * MIB]),
    st.sampled_from([2048, 8192]),
    st.sampled_from([0, 600 * MIB]),
    st.sampled_from(["cuda", "metal"]),
    st.booleans(),
)
def test_placement_matches_trying_every_layer(
    layer_mib: list[int],
    free_mib: list[int],
    num_gpu: int,
    overhead: int,
    num_ctx: int,
    projector: int,
    library: GpuLibrary,
    force: bool,
) -> None:
    spec = replace(_spec([32] * len(layer_mib), [8] * len(layer_mib), layer_mib), projector_bytes=projector)
    gpus = [GpuDevice(f"gpu{i}", 24 * GIB, free * MIB, library) for i, free in enumerate(free_mib)]
    options = PlanOptions(num_ctx=num_ctx, num_gpu=num_gpu, gpu_overhead_bytes=overhead)
    sizes = graph_sizes(spec, num_ctx, options.num_batch, options.parallel, "f16", False)
    expected = _place_every_layer(spec, gpus, sizes, options, force)
    assert _place_estimator(spec, gpus, sizes, options, force) == expected
