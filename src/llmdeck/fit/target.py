"""The machine a plan is for: this one as measured, or another one described on the command line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmdeck.fit.gpus import find_gpu, gpu_table, lookup_gpu
from llmdeck.fit.planner import GpuDevice, GpuLibrary, SystemMemory
from llmdeck.fit.speed import DEFAULT_RAM_BANDWIDTH_GBPS
from llmdeck.hardware import HardwareSnapshot, UnifiedMemory
from llmdeck.hardware.apple import WIRED_LIMIT_SYSCTL, metal_working_set

GIB = 1024**3


@dataclass(frozen=True, slots=True)
class Target:
    gpus: tuple[GpuDevice, ...]
    gpu_bandwidths_gbps: tuple[float | None, ...]
    memory: SystemMemory
    ram_bandwidth_gbps: float
    unified_memory: bool
    # One line per fact, saying where it came from (measured, looked up, given, assumed).
    provenance: tuple[str, ...]

    @property
    def gpu_total_bytes(self) -> int:
        return sum(gpu.total_bytes for gpu in self.gpus)


def build_target(
    snapshot: HardwareSnapshot,
    *,
    gpu_names: Sequence[str] = (),
    gpu_free_gib: Sequence[float] = (),
    ram_free_gib: float | None = None,
    swap_free_gib: float | None = None,
    metal: bool = False,
    ram_bandwidth_gbps: float | None = None,
) -> Target:
    provenance: list[str] = []
    where = "recorded" if snapshot.source == "recorded" else "measured"
    total_ram = snapshot.memory.total_bytes
    free_ram = snapshot.memory.available_bytes if ram_free_gib is None else int(ram_free_gib * GIB)
    free_swap = snapshot.memory.swap_free_bytes if swap_free_gib is None else int(swap_free_gib * GIB)
    provenance.append(
        f"RAM {free_ram / GIB:.1f} GiB free ({'given' if ram_free_gib is not None else where}), "
        f"swap {free_swap / GIB:.1f} GiB free ({'given' if swap_free_gib is not None else where})"
    )

    gpus: list[GpuDevice] = []
    bandwidths: list[float | None] = []
    library: GpuLibrary = "metal" if metal else "cuda"
    if gpu_names:
        if gpu_free_gib and len(gpu_free_gib) not in (1, len(gpu_names)):
            raise ValueError(f"--gpu-free has {len(gpu_free_gib)} values for {len(gpu_names)} GPUs")
        for index, name in enumerate(gpu_names):
            model = lookup_gpu(name)
            if model.unified_memory:
                library = "metal"
            total = metal_working_set(total_ram) if model.unified_memory else model.vram_bytes
            given = _pick(gpu_free_gib, index)
            free = int(given * GIB) if given is not None else total
            gpus.append(GpuDevice(model.name, total, free, "metal" if model.unified_memory else library))
            bandwidths.append(model.bandwidth_gbps)
            provenance.append(
                f"GPU {index} {model.name}: {free / GIB:.1f} GiB free of {total / GIB:.1f} GiB "
                f"({'given' if given is not None else 'assumed all free'}), "
                f"{model.bandwidth_gbps:.0f} GB/s (looked up)"
            )
    elif snapshot.gpu.unified is not None:
        library = "metal"
        given = _pick(gpu_free_gib, 0)
        device, looked_up, line = _unified_gpu(snapshot.gpu.unified, free_ram, given, where)
        gpus.append(device)
        bandwidths.append(looked_up)
        provenance.append(line)
    elif snapshot.gpu.gpus:
        for index, detected in enumerate(snapshot.gpu.gpus):
            given = _pick(gpu_free_gib, index)
            # What Ollama's runners hold is free for the next model: its scheduler unloads an idle
            # model to make room, and the chat's own model reuses its memory.
            reclaimable = detected.runner_vram_bytes or 0
            free = (
                int(given * GIB)
                if given is not None
                else min(detected.vram_free_bytes + reclaimable, detected.vram_total_bytes)
            )
            known = find_gpu(detected.name)
            gpus.append(GpuDevice(detected.name, detected.vram_total_bytes, free, library))
            bandwidths.append(known.bandwidth_gbps if known else None)
            bandwidth = f"{known.bandwidth_gbps:.0f} GB/s (looked up)" if known else "bandwidth unknown"
            held = ""
            if reclaimable and given is None:
                held = f", counting {reclaimable / GIB:.1f} GiB Ollama holds now"
            provenance.append(
                f"GPU {index} {detected.name}: {free / GIB:.1f} GiB free "
                f"({'given' if given is not None else where}{held}) of "
                f"{detected.vram_total_bytes / GIB:.1f} GiB, {bandwidth}"
            )
    elif gpu_free_gib:
        for index, free_gib in enumerate(gpu_free_gib):
            free = int(free_gib * GIB)
            gpus.append(GpuDevice(f"GPU {index}", free, free, library))
            bandwidths.append(None)
            provenance.append(f"GPU {index}: {free_gib:.1f} GiB free (given), bandwidth unknown")
    elif metal:
        total = metal_working_set(total_ram)
        gpus.append(GpuDevice("Apple GPU", total, total, "metal"))
        bandwidths.append(None)
        provenance.append(f"Apple GPU: {total / GIB:.1f} GiB of unified memory usable (macOS working set)")
    else:
        provenance.append(f"no GPU: {snapshot.gpu.unavailable_reason or 'none detected'}")

    unified = bool(gpus) and gpus[0].library == "metal"
    ram_bandwidth = DEFAULT_RAM_BANDWIDTH_GBPS
    if ram_bandwidth_gbps is not None:
        ram_bandwidth = ram_bandwidth_gbps
        provenance.append(f"RAM bandwidth {ram_bandwidth:.0f} GB/s (given)")
    elif unified and bandwidths and bandwidths[0]:
        ram_bandwidth = bandwidths[0]
        provenance.append(f"RAM bandwidth {ram_bandwidth:.0f} GB/s (unified memory, looked up)")
    else:
        provenance.append(f"RAM bandwidth {ram_bandwidth:.0f} GB/s (assumed: dual-channel DDR4/DDR5)")
    return Target(
        gpus=tuple(gpus),
        gpu_bandwidths_gbps=tuple(bandwidths),
        memory=SystemMemory(total_bytes=total_ram, free_bytes=free_ram, free_swap_bytes=free_swap),
        ram_bandwidth_gbps=ram_bandwidth,
        unified_memory=unified,
        provenance=tuple(provenance),
    )


def _unified_gpu(
    shared: UnifiedMemory, free_ram: int, given_gib: float | None, where: str
) -> tuple[GpuDevice, float | None, str]:
    """Apple Silicon as measured: the GPU may use up to its wired limit of whatever RAM is free."""
    total = shared.gpu_limit_bytes
    free = int(given_gib * GIB) if given_gib is not None else min(total, free_ram)
    # The chip's name ("Apple M2 Pro"), not a table entry's: its GPU core count is not measured.
    name = shared.chip or "Apple GPU"
    bandwidth, bandwidth_text = _apple_bandwidth(shared.chip)
    limit = (
        f"set with sysctl {WIRED_LIMIT_SYSCTL}"
        if shared.limit_source == WIRED_LIMIT_SYSCTL
        else shared.limit_source
    )
    line = (
        f"GPU 0 {name}: {free / GIB:.1f} GiB free "
        f"({'given' if given_gib is not None else f'{where}: RAM available, up to the limit'}) "
        f"of {total / GIB:.1f} GiB unified memory the GPU may use ({limit}), {bandwidth_text}"
    )
    return GpuDevice(name, total, free, "metal"), bandwidth, line


def _apple_bandwidth(chip: str | None) -> tuple[float | None, str]:
    """The GPU bandwidth of a chip as macOS names it ("Apple M3 Max"), and how it is known.

    macOS names the chip, not its GPU: an "Apple M3 Max" has a 30-core (300 GB/s) or a 40-core
    (400 GB/s) GPU. A bandwidth is only taken when every variant of the chip has the same one.
    """
    known = find_gpu(chip) if chip else None
    if chip is None or known is None:
        return None, "bandwidth unknown"
    # The chip's entries in the table: every one sharing a name or an alias with the one found.
    variants = [
        gpu for gpu in gpu_table() if any(find_gpu(name) is known for name in (gpu.name, *gpu.aliases))
    ]
    speeds = sorted({gpu.bandwidth_gbps for gpu in variants})
    if len(speeds) == 1:
        return speeds[0], f"{speeds[0]:.0f} GB/s (looked up)"
    return None, f"bandwidth unknown ({chip}: {speeds[0]:.0f} to {speeds[-1]:.0f} GB/s by GPU core count)"


def _pick(values: Sequence[float], index: int) -> float | None:
    if not values:
        return None
    return values[index] if len(values) > 1 else values[0]
