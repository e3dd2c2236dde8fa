"""Probes that produce a `HardwareSnapshot`.

`SystemProbe` reads this machine (psutil and NVML); it blocks for a few milliseconds, so the UI
calls it from a thread worker. `StaticProbe` returns a recorded snapshot, for planning another
machine and for tests.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Protocol

import psutil

from llmdeck.hardware.nvml import RUNNER_NAMES, NvmlLibrary, PynvmlLibrary, read_gpus
from llmdeck.hardware.snapshot import CpuInfo, HardwareSnapshot, MemoryInfo


class HardwareProbe(Protocol):
    def snapshot(self) -> HardwareSnapshot: ...
    def close(self) -> None: ...


class SystemProbe:
    def __init__(self, nvml: NvmlLibrary | None = None) -> None:
        self._nvml = nvml if nvml is not None else PynvmlLibrary()

    def snapshot(self) -> HardwareSnapshot:
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        return HardwareSnapshot(
            cpu=CpuInfo(
                model=cpu_model(),
                physical_cores=psutil.cpu_count(logical=False),
                logical_cores=psutil.cpu_count(logical=True),
                # Non-blocking: the load since the previous call (0.0 on the very first one).
                load_percent=psutil.cpu_percent(interval=None),
            ),
            memory=MemoryInfo(
                total_bytes=int(memory.total),
                available_bytes=int(memory.available),
                swap_total_bytes=int(swap.total),
                swap_free_bytes=int(swap.free),
            ),
            gpu=read_gpus(self._nvml, runner_pids()),
        )

    def close(self) -> None:
        self._nvml.shutdown()


class StaticProbe:
    def __init__(self, snapshot: HardwareSnapshot) -> None:
        self._snapshot = snapshot

    def snapshot(self) -> HardwareSnapshot:
        return self._snapshot

    def close(self) -> None:
        pass


@cache
def cpu_model() -> str:
    """The CPU's marketing name, as the OS reports it."""
    if sys.platform.startswith("linux"):
        name = _linux_cpu_model(Path("/proc/cpuinfo"))
        if name:
            return name
    elif sys.platform == "darwin":
        try:
            result = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=2,
                check=False,
            )
            if result.returncode == 0 and result.stdout.strip():
                return result.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _linux_cpu_model(cpuinfo: Path) -> str | None:
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # x86 says "model name"; many ARM kernels only say "Hardware" or "Model".
    for key in ("model name", "Hardware", "Model"):
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return None


def runner_pids() -> frozenset[int]:
    """Processes that are Ollama's model runners (or the server, which hosts them in new versions)."""
    pids = set()
    for process in psutil.process_iter(["pid", "name"]):
        if process.info.get("name") in RUNNER_NAMES:
            pids.add(int(process.info["pid"]))
    return frozenset(pids)
