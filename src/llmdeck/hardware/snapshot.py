"""What the machine has, at one moment: plain data, serialisable to JSON and back.

A snapshot recorded on one machine (`llmdeck hardware --json > box.json`) can be loaded on another
(`llmdeck --hardware box.json`) to see what that machine would run; tests use recorded snapshots the
same way, so the screen they pin does not depend on the machine running them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

SnapshotSource = Literal["measured", "recorded"]


@dataclass(frozen=True, slots=True)
class CpuInfo:
    model: str
    physical_cores: int | None
    logical_cores: int | None
    load_percent: float | None = None


@dataclass(frozen=True, slots=True)
class MemoryInfo:
    total_bytes: int
    available_bytes: int
    swap_total_bytes: int
    swap_free_bytes: int


@dataclass(frozen=True, slots=True)
class GpuInfo:
    index: int
    name: str
    vram_total_bytes: int
    vram_used_bytes: int
    vram_free_bytes: int
    # None where NVML answers "not supported" (some laptop and datacenter parts), never a guess.
    utilization_percent: int | None = None
    temperature_c: int | None = None
    power_w: float | None = None
    # VRAM held by Ollama's runner processes on this GPU; None where the driver does not say
    # (Windows WDDM, WSL), 0 when no runner holds any.
    runner_vram_bytes: int | None = None
    # What the driver keeps for itself (NVML's v2 memory call); `vram_used_bytes` then excludes it.
    # None with drivers that only have the v1 call, where "used" includes it.
    vram_reserved_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class UnifiedMemory:
    """Apple Silicon: the GPU has no memory of its own but may wire up to a limit of the RAM."""

    gpu_limit_bytes: int
    # Where the limit comes from: "iogpu.wired_limit_mb" when the user set that sysctl, else the
    # rule macOS applies by default.
    limit_source: str
    # RAM wired now (by the kernel and the GPU together); None where psutil does not say.
    wired_bytes: int | None = None
    chip: str | None = None  # "Apple M2 Pro", as machdep.cpu.brand_string says


@dataclass(frozen=True, slots=True)
class GpuReport:
    """Every GPU NVML could see, or why it could see none."""

    gpus: tuple[GpuInfo, ...] = ()
    # Set when `gpus` is empty for a reason the user should know ("no NVIDIA driver", ...).
    unavailable_reason: str | None = None
    driver_version: str | None = None
    # Set on Apple Silicon, where there is no NVIDIA GPU to list but the GPU shares the RAM.
    unified: UnifiedMemory | None = None


@dataclass(frozen=True, slots=True)
class HardwareSnapshot:
    cpu: CpuInfo
    memory: MemoryInfo
    gpu: GpuReport = field(default_factory=GpuReport)
    source: SnapshotSource = "measured"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> HardwareSnapshot:
        try:
            data = json.loads(text)
            gpu = data.get("gpu", {})
            # Files recorded before a field existed lack it; every field added since has a default.
            unified = gpu.get("unified")
            return cls(
                cpu=CpuInfo(**data["cpu"]),
                memory=MemoryInfo(**data["memory"]),
                gpu=GpuReport(
                    gpus=tuple(GpuInfo(**device) for device in gpu.get("gpus", [])),
                    unavailable_reason=gpu.get("unavailable_reason"),
                    driver_version=gpu.get("driver_version"),
                    unified=None if unified is None else UnifiedMemory(**unified),
                ),
                source="recorded",
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"not a hardware snapshot: {exc}") from exc

    @classmethod
    def load(cls, path: Path) -> HardwareSnapshot:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SnapshotError(f"cannot read hardware snapshot {path}: {exc.strerror}") from exc
        try:
            return cls.from_json(text)
        except SnapshotError as exc:
            raise SnapshotError(f"{path}: {exc}") from exc


class SnapshotError(ValueError):
    pass
