"""Known GPUs: memory size and bandwidth, looked up from vendor specifications.

Names are those NVML (or macOS) reports: "NVIDIA GeForce RTX 4090", "NVIDIA A100 80GB PCIe",
"Apple M2 Pro (19-core GPU)". A lookup ignores case and accepts the name without its vendor
prefix ("rtx 4090", "GeForce RTX 4090").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

GIB = 1024**3


@dataclass(frozen=True, slots=True)
class GpuModel:
    name: str
    vendor: str
    vram_gib: tuple[float, ...]
    bandwidth_gbps: float
    aliases: tuple[str, ...]
    source: str

    @property
    def unified_memory(self) -> bool:
        return self.vendor == "Apple"

    @property
    def vram_bytes(self) -> int:
        return int(self.vram_gib[0] * GIB)


class UnknownGpu(ValueError):
    pass


@cache
def gpu_table() -> tuple[GpuModel, ...]:
    raw = json.loads((resources.files("llmdeck.fit") / "data" / "gpus.json").read_text(encoding="utf-8"))
    return tuple(
        GpuModel(
            name=entry["name"],
            vendor=entry["vendor"],
            vram_gib=tuple(float(v) for v in entry["vram_gib"]),
            bandwidth_gbps=float(entry["bandwidth_gbps"]),
            aliases=tuple(entry.get("aliases", ())),
            source=entry["source"],
        )
        for entry in raw["gpus"]
    )


_PREFIXES = re.compile(r"^(nvidia|amd|apple|geforce|radeon|tesla|quadro)\s+")


def _normal(name: str) -> str:
    """Lower case, vendor prefixes dropped, and no spaces: "RTX4090" is "NVIDIA GeForce RTX 4090"."""
    text = re.sub(r"\s+", " ", name.strip().lower())
    while True:
        shorter = _PREFIXES.sub("", text)
        if shorter == text:
            return text.replace(" ", "")
        text = shorter


@cache
def _index() -> dict[str, GpuModel]:
    index: dict[str, GpuModel] = {}
    for gpu in gpu_table():
        for name in (gpu.name, *gpu.aliases):
            index.setdefault(_normal(name), gpu)
    return index


def find_gpu(name: str) -> GpuModel | None:
    return _index().get(_normal(name))


def lookup_gpu(name: str) -> GpuModel:
    """The GPU a user named; the error suggests close names when there is no exact match."""
    found = find_gpu(name)
    if found is not None:
        return found
    wanted = _normal(name)
    close = sorted({gpu.name for key, gpu in _index().items() if wanted in key})[:5]
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownGpu(f"unknown GPU {name!r}{hint}")
