"""Probes that produce a `HardwareSnapshot`.

`SystemProbe` reads this machine (psutil, and NVML or on Apple Silicon sysctls); it blocks for a
fraction of a millisecond, so the UI calls it from a thread worker. `StaticProbe` returns a recorded
snapshot, for planning another machine and for tests.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import psutil

from llmdeck.hardware.apple import (
    APPLE_SILICON_REASON,
    SysctlReader,
    is_apple_silicon,
    read_sysctl,
    sysctl_text,
    unified_memory,
)
from llmdeck.hardware.nvml import RUNNER_NAMES, NvmlLibrary, PynvmlLibrary, read_gpus
from llmdeck.hardware.snapshot import CpuInfo, GpuReport, HardwareSnapshot, MemoryInfo


class HardwareProbe(Protocol):
    def snapshot(self) -> HardwareSnapshot: ...
    def close(self) -> None: ...


SWAP_REFRESH_S = 5.0


class SystemProbe:
    """This machine. `system` and `machine` (`sys.platform`, `platform.machine()` by default) and
    `sysctl` are there for tests: they play a Mac on any OS."""

    def __init__(
        self,
        nvml: NvmlLibrary | None = None,
        *,
        system: str | None = None,
        machine: str | None = None,
        sysctl: SysctlReader = read_sysctl,
    ) -> None:
        self._nvml = nvml if nvml is not None else PynvmlLibrary()
        self._sysctl = sysctl
        system = sys.platform if system is None else system
        machine = platform.machine() if machine is None else machine
        # Decided once: off macOS this short-circuits before any sysctl is read.
        self._apple_silicon = is_apple_silicon(system, machine, sysctl)
        self._chip = sysctl_text(sysctl, "machdep.cpu.brand_string") if self._apple_silicon else None
        self._swap: tuple[float, Any] | None = None

    def snapshot(self) -> HardwareSnapshot:
        memory = psutil.virtual_memory()
        swap = self._swap_memory()
        physical_cores, logical_cores = core_counts()
        return HardwareSnapshot(
            cpu=CpuInfo(
                model=cpu_model(),
                physical_cores=physical_cores,
                logical_cores=logical_cores,
                # Non-blocking: the load since the previous call (0.0 on the very first one).
                load_percent=psutil.cpu_percent(interval=None),
            ),
            memory=MemoryInfo(
                total_bytes=int(memory.total),
                available_bytes=int(memory.available),
                swap_total_bytes=int(swap.total),
                swap_free_bytes=int(swap.free),
            ),
            gpu=(
                # psutil has `wired` on macOS only.
                self._apple_gpu(int(memory.total), getattr(memory, "wired", None))
                if self._apple_silicon
                else read_gpus(self._nvml, runner_pids)
            ),
        )

    def _apple_gpu(self, total_ram: int, wired: int | None) -> GpuReport:
        # There is no NVML on macOS: asking for it would only produce a misleading "no driver".
        # The limit is read every time: `sudo sysctl iogpu.wired_limit_mb=...` changes it live.
        unified = unified_memory(self._sysctl, total_ram, wired, self._chip)
        return GpuReport(unavailable_reason=APPLE_SILICON_REASON, unified=unified)

    def close(self) -> None:
        self._nvml.shutdown()

    def _swap_memory(self) -> Any:
        # Half the cost of a sample on Linux, and swap moves slowly: read it every few seconds.
        now = time.monotonic()
        if self._swap is None or now - self._swap[0] >= SWAP_REFRESH_S:
            self._swap = (now, psutil.swap_memory())
        return self._swap[1]


class StaticProbe:
    def __init__(self, snapshot: HardwareSnapshot) -> None:
        self._snapshot = snapshot

    def snapshot(self) -> HardwareSnapshot:
        return self._snapshot

    def close(self) -> None:
        pass


@cache
def core_counts() -> tuple[int | None, int | None]:
    """Physical and logical cores. They do not change while we run, and psutil reads sysfs for the
    physical count, which would otherwise be a sizeable share of each sample."""
    return psutil.cpu_count(logical=False), psutil.cpu_count(logical=True)


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
