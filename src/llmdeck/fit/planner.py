"""How many layers of a model go to the GPU(s), and how much memory it takes, as Ollama decides.

Three regimes, after the Ollama version that will load the model:

- `estimator` (Ollama up to 0.12.10): `estimateGPULayers` in `llm/memory.go`, reproduced step
  by step: a per-GPU minimum (457 MiB, 512 MiB on Metal) plus `OLLAMA_GPU_OVERHEAD`, one spare
  layer held on every GPU, the "too little memory for any layer" rule, layers placed from the last
  one down, round-robin over the GPUs, the output layer last, then the compute graph.
- `layout` (0.12.11 to 0.29): Ollama's newer memory layout; usable VRAM per GPU is free memory
  less the minimum, the overhead and the graph, filled from the last layer down; no spare layer.
- `fit` (0.30 and later): Ollama leaves placement to llama.cpp's `--fit`, which keeps a margin
  of 1 GiB per device and fills the rest with weights, KV cache and compute buffers.

The result carries `size` and `size_vram` as `/api/ps` would report them, the processor split
as `ollama ps` prints it, and a verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from llmdeck.fit.memory import GraphSizes, graph_sizes
from llmdeck.fit.spec import ModelSpec

MIB = 1024**2
GIB = 1024**3
CUDA_MINIMUM_MEMORY = 457 * MIB
METAL_MINIMUM_MEMORY = 512 * MIB
FIT_TARGET_MARGIN = 1024 * MIB  # llama.cpp's --fit-target default, per device

Regime = Literal["estimator", "layout", "fit"]
Verdict = Literal["gpu", "partial", "cpu", "none"]
GpuLibrary = Literal["cuda", "rocm", "metal"]


@dataclass(frozen=True, slots=True)
class GpuDevice:
    name: str
    total_bytes: int
    free_bytes: int
    library: GpuLibrary = "cuda"

    @property
    def minimum_memory(self) -> int:
        return METAL_MINIMUM_MEMORY if self.library == "metal" else CUDA_MINIMUM_MEMORY


@dataclass(frozen=True, slots=True)
class SystemMemory:
    total_bytes: int
    free_bytes: int
    free_swap_bytes: int = 0


@dataclass(frozen=True, slots=True)
class PlanOptions:
    num_ctx: int = 4096
    num_batch: int = 512
    parallel: int = 1
    kv_cache_type: str = "f16"
    # None: Ollama's default for the architecture (on for gemma3, qwen3, gpt-oss, ...).
    flash_attention: bool | None = None
    # -1 lets Ollama decide, as `num_gpu` does; N >= 0 asks for N layers.
    num_gpu: int = -1
    gpu_overhead_bytes: int = 0
    regime: Regime = "estimator"


@dataclass(frozen=True, slots=True)
class Plan:
    model: str
    num_ctx: int
    layers_total: int
    num_gpu: int
    layers_per_gpu: tuple[int, ...]
    size: int
    size_vram: int
    bytes_per_gpu: tuple[int, ...]
    verdict: Verdict
    regime: Regime
    kv_cache_bytes: int
    graph_bytes: int
    flash_attention: bool
    kv_cache_type: str
    notes: tuple[str, ...] = field(default=())

    @property
    def processor(self) -> str:
        return processor_split(self.size, self.size_vram)

    @property
    def cpu_bytes(self) -> int:
        return self.size - self.size_vram


def processor_split(size: int, size_vram: int) -> str:
    """The PROCESSOR column of `ollama ps` (cmd/cmd.go), byte for byte."""
    if size_vram == 0:
        return "100% CPU"
    if size_vram == size:
        return "100% GPU"
    if size_vram > size or size == 0:
        return "Unknown"
    cpu_percent = round((size - size_vram) / size * 100)
    return f"{cpu_percent}%/{100 - cpu_percent}% CPU/GPU"


def effective_cache(
    spec: ModelSpec, options: PlanOptions, gpus: Sequence[GpuDevice]
) -> tuple[bool, str, list[str]]:
    """Whether flash attention is on and which KV type applies, as Ollama resolves them."""
    notes: list[str] = []
    wanted = spec.flash_attention_by_default if options.flash_attention is None else options.flash_attention
    flash = wanted and spec.supports_flash_attention
    if wanted and not flash:
        notes.append("flash attention is not available for this model; it runs without")
    kv_type = options.kv_cache_type
    if kv_type != "f16" and not flash:
        notes.append(f"KV cache type {kv_type} needs flash attention; Ollama falls back to f16")
        kv_type = "f16"
    return flash, kv_type, notes


def plan(
    spec: ModelSpec,
    gpus: Sequence[GpuDevice],
    memory: SystemMemory,
    options: PlanOptions = PlanOptions(),
) -> Plan:
    flash, kv_type, notes = effective_cache(spec, options, gpus)
    num_ctx = options.num_ctx
    if spec.context_length and num_ctx > spec.context_length:
        notes.append(f"num_ctx {num_ctx} exceeds the model's {spec.context_length}; Ollama clamps it")
        num_ctx = spec.context_length
    sizes = graph_sizes(spec, num_ctx, options.num_batch, options.parallel, kv_type, flash)
    placement = _place_fewest_gpus(spec, gpus, sizes, options)
    layers_total = spec.block_count + 1
    layer_count = sum(placement.layer_counts)
    wanted = min(options.num_gpu, layers_total)
    if 0 < layer_count < wanted:
        # Ollama loads the layers a user asks for even past its own estimate.
        notes.append(
            f"num_gpu {wanted} asks for more layers than fit (about {layer_count}): "
            "Ollama loads them anyway and may run out of VRAM"
        )
        if options.regime == "estimator":
            placement = _place_estimator(spec, gpus, sizes, options, force=True)
        layer_count = sum(placement.layer_counts)

    metal = bool(gpus) and gpus[0].library == "metal"
    if (
        options.num_gpu == 0
        or not gpus
        or layer_count == 0
        or (metal and placement.vram > memory.total_bytes)
    ):
        # Ollama runs the model on the CPU: everything in system memory, no graph on a GPU.
        size = sum(spec.layer_bytes) + sizes.kv_total + spec.output_bytes + spec.projector_bytes
        # Asked for the CPU (or without a GPU) Ollama checks free RAM alone; falling back to the
        # CPU for lack of VRAM, it counts swap too.
        cpu_by_choice = options.num_gpu == 0 or not gpus
        fits = size <= memory.free_bytes + (0 if cpu_by_choice else memory.free_swap_bytes)
        if gpus and options.num_gpu != 0 and layer_count == 0:
            notes.append("too little free VRAM for even one layer")
        return Plan(
            model=spec.name,
            num_ctx=num_ctx,
            layers_total=layers_total,
            num_gpu=0,
            layers_per_gpu=tuple(0 for _ in gpus),
            size=size,
            size_vram=0,
            bytes_per_gpu=tuple(0 for _ in gpus),
            verdict="cpu" if fits else "none",
            regime=options.regime,
            kv_cache_bytes=sizes.kv_total,
            graph_bytes=0,
            flash_attention=flash,
            kv_cache_type=kv_type,
            notes=tuple(notes),
        )

    size = placement.vram + placement.overflow
    cpu_part = size - placement.vram
    # Ollama refuses to load when the CPU share exceeds free RAM plus swap (Linux and Windows).
    fits = metal or cpu_part <= memory.free_bytes + memory.free_swap_bytes
    verdict: Verdict
    if not fits:
        verdict = "none"
    elif layer_count >= layers_total:
        verdict = "gpu"
    else:
        verdict = "partial"
    return Plan(
        model=spec.name,
        num_ctx=num_ctx,
        layers_total=layers_total,
        num_gpu=layer_count,
        layers_per_gpu=tuple(placement.layer_counts),
        size=size,
        size_vram=placement.vram,
        bytes_per_gpu=tuple(placement.allocations),
        verdict=verdict,
        regime=options.regime,
        kv_cache_bytes=sizes.kv_total,
        graph_bytes=placement.graph,
        flash_attention=flash,
        kv_cache_type=kv_type,
        notes=tuple(notes),
    )


@dataclass
class _Placement:
    layer_counts: list[int]
    allocations: list[int]
    overflow: int
    graph: int

    @property
    def vram(self) -> int:
        return sum(self.allocations)


def _place_fewest_gpus(
    spec: ModelSpec, gpus: Sequence[GpuDevice], sizes: GraphSizes, options: PlanOptions
) -> _Placement:
    """As Ollama's `pickBestFullFitByLibrary`: a model that fits whole on fewer GPUs (those with
    the most free memory first) goes there; otherwise it is spread over all of them."""
    if len(gpus) < 2 or options.num_gpu >= 0:
        return _place(spec, gpus, sizes, options)
    order = sorted(range(len(gpus)), key=lambda index: gpus[index].free_bytes, reverse=True)
    for count in range(1, len(gpus)):
        chosen = order[:count]
        subset = _place(spec, [gpus[i] for i in chosen], sizes, options)
        if sum(subset.layer_counts) >= spec.block_count + 1:
            counts = [0] * len(gpus)
            allocations = [0] * len(gpus)
            for position, index in enumerate(chosen):
                counts[index] = subset.layer_counts[position]
                allocations[index] = subset.allocations[position]
            return _Placement(counts, allocations, subset.overflow, subset.graph)
    return _place(spec, gpus, sizes, options)


def _place(spec: ModelSpec, gpus: Sequence[GpuDevice], sizes: GraphSizes, options: PlanOptions) -> _Placement:
    if options.regime == "estimator":
        return _place_estimator(spec, gpus, sizes, options)
    return _place_greedy(spec, gpus, sizes, options)


def _graphs(gpus: Sequence[GpuDevice], sizes: GraphSizes) -> tuple[int, int]:
    partial, full = sizes.partial, sizes.full
    if gpus and gpus[0].library == "metal":
        partial = full  # Metal has no partial-offload penalty
    elif len(gpus) > 1:
        full = partial  # several GPUs always use the partial graph
    return partial, full


def _place_estimator(
    spec: ModelSpec, gpus: Sequence[GpuDevice], sizes: GraphSizes, options: PlanOptions, force: bool = False
) -> _Placement:
    """Ollama's `estimateGPULayers`; with `force`, the layers a user asked for are placed whether
    they fit or not, as Ollama then loads them."""
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
            continue  # "gpu has too little memory to allocate any layers"
        with_space.append(index)
        allocations[index] += gpu.minimum_memory + spare_layer
    if with_space:
        allocations[with_space[0]] += projector

    layer_count = 0
    overflow = 0
    # Every layer is tried on every GPU with room: the loop below runs often, so it reads locals.
    layer_bytes, num_gpu = spec.layer_bytes, options.num_gpu
    free = [gpu.free_bytes for gpu in gpus]
    for layer in range(blocks - 1, -1, -1):
        if not with_space or (num_gpu >= 0 and layer_count >= num_gpu):
            # No GPU has room left, or the layers asked for are placed: this layer and every one
            # below it stay in system memory.
            overflow += sum(layer_bytes[: layer + 1]) + sum(kv[: layer + 1])
            break
        layer_size = layer_bytes[layer] + kv[layer]
        for remaining in range(len(with_space), 0, -1):
            slot = layer % remaining
            gpu_index = with_space[slot]
            used = allocations[gpu_index] + graph_max
            if force or free[gpu_index] > overhead + used + layer_size:
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
        # Not inside the num_gpu condition: an output layer left out is in system memory.
        if layer_count < blocks + 1:
            fully_loaded = False
            overflow += output

    graph = graph_full if fully_loaded else graph_partial
    for index in range(len(gpus)):
        if counts[index] > 0:
            allocations[index] += graph
    return _Placement(counts, allocations, overflow, graph)


def _place_greedy(
    spec: ModelSpec, gpus: Sequence[GpuDevice], sizes: GraphSizes, options: PlanOptions
) -> _Placement:
    """Fill each device's usable memory from the last layer down (the `layout` and `fit` regimes)."""
    graph_partial, graph_full = _graphs(gpus, sizes)
    kv = sizes.kv_per_layer
    blocks = spec.block_count
    usable = []
    for gpu in gpus:
        if options.regime == "fit":
            reserve = FIT_TARGET_MARGIN + options.gpu_overhead_bytes
        else:
            reserve = gpu.minimum_memory + options.gpu_overhead_bytes
        usable.append(max(0, gpu.free_bytes - reserve - max(graph_partial, graph_full)))
    if usable:
        usable[0] -= min(usable[0], spec.projector_bytes)

    counts = [0] * len(gpus)
    allocations = [0] * len(gpus)
    wanted = blocks + 1 if options.num_gpu < 0 else min(options.num_gpu, blocks + 1)
    # llama.cpp offloads the last N repeating layers; the output layer joins only once all of them
    # are on the GPU (it counts as layer N = block_count + 1), the same order as Ollama's.
    order = [*(spec.layer_bytes[i] + kv[i] for i in range(blocks - 1, -1, -1)), spec.output_bytes]
    device = 0
    placed = 0
    overflow = 0
    for layer_size in order:
        if placed >= wanted:
            overflow += layer_size
            continue
        while device < len(gpus) and allocations[device] + layer_size > usable[device]:
            device += 1
        if device >= len(gpus):
            overflow += layer_size
            continue
        allocations[device] += layer_size
        counts[device] += 1
        placed += 1
    fully_loaded = placed >= blocks + 1
    graph = graph_full if fully_loaded else graph_partial
    for index in range(len(gpus)):
        if counts[index] > 0:
            allocations[index] += graph
    if options.regime == "layout" and spec.projector_bytes and counts and counts[0] > 0:
        allocations[0] += spec.projector_bytes
    return _Placement(counts, allocations, overflow, graph)
