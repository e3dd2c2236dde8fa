"""What the machine has: CPU, memory and GPUs (no Textual here)."""

from llmdeck.hardware.probe import HardwareProbe, StaticProbe, SystemProbe
from llmdeck.hardware.snapshot import (
    CpuInfo,
    GpuInfo,
    GpuReport,
    HardwareSnapshot,
    MemoryInfo,
    SnapshotError,
    UnifiedMemory,
)

__all__ = [
    "CpuInfo",
    "GpuInfo",
    "GpuReport",
    "HardwareProbe",
    "HardwareSnapshot",
    "MemoryInfo",
    "SnapshotError",
    "StaticProbe",
    "SystemProbe",
    "UnifiedMemory",
]
