"""NVIDIA GPUs through NVML, behind a thin typed adapter.

`NvmlLibrary` is the whole surface llmdeck uses. `PynvmlLibrary` implements it over `pynvml`
(the `nvidia-ml-py` package); tests implement it over recorded readings. `read_gpus` turns either
into a `GpuReport` and is where every NVML failure becomes a sentence a user can act on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, TypeVar

from llmdeck.hardware.snapshot import GpuInfo, GpuReport

# NVML return codes (nvml.h) that need their own message.
NOT_SUPPORTED = 3
NO_PERMISSION = 4
DRIVER_NOT_LOADED = 9
LIBRARY_NOT_FOUND = 12
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15
LIB_RM_VERSION_MISMATCH = 18


class NvmlFailure(Exception):
    """An NVML call failed; `code` is NVML's own return code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class MemoryReading:
    total: int
    used: int
    free: int
    # What the driver reserves, from the v2 call (where `used` excludes it); None from v1.
    reserved: int | None = None


class NvmlLibrary(Protocol):
    def init(self) -> None: ...
    def shutdown(self) -> None: ...
    def driver_version(self) -> str: ...
    def device_count(self) -> int: ...
    def device_name(self, index: int) -> str: ...
    def memory(self, index: int) -> MemoryReading: ...
    def utilization_percent(self, index: int) -> int: ...
    def temperature_c(self, index: int) -> int: ...
    def power_w(self, index: int) -> float: ...
    def process_memory(self, index: int) -> list[tuple[int, int | None]]: ...


def reason_for(failure: NvmlFailure) -> str:
    """Why there is no GPU reading, in the words a user needs to fix it."""
    if failure.code == LIBRARY_NOT_FOUND:
        return "no NVIDIA GPU: the NVIDIA driver is not installed (libnvidia-ml not found)"
    if failure.code == DRIVER_NOT_LOADED:
        return "no NVIDIA GPU: the NVIDIA driver is installed but not loaded"
    if failure.code == NO_PERMISSION:
        return "NVIDIA GPU not readable: permission denied by the driver"
    if failure.code == LIB_RM_VERSION_MISMATCH:
        return "NVIDIA driver and library versions differ: reboot or reinstall the driver"
    if failure.code == GPU_IS_LOST:
        return "NVIDIA GPU lost: it stopped answering the driver"
    return f"NVIDIA GPU not readable: {failure} (NVML error {failure.code})"


RUNNER_NAMES = frozenset({"ollama", "ollama_llama_server", "llama-server"})


def _no_runners() -> frozenset[int]:
    return frozenset()


def read_gpus(library: NvmlLibrary, runner_pids: Callable[[], frozenset[int]] = _no_runners) -> GpuReport:
    """Read every GPU; never raises for an NVML failure.

    `runner_pids` lists the processes whose VRAM counts as the runner's. Listing processes is the
    dearest part of a sample, so it is called only when a GPU reports processes, and at most once.
    """
    try:
        library.init()
    except NvmlFailure as failure:
        return GpuReport(unavailable_reason=reason_for(failure))
    runners = cache(runner_pids)
    try:
        driver = _optional(library.driver_version)
        count = library.device_count()
        if count == 0:
            return GpuReport(
                unavailable_reason="no NVIDIA GPU: the driver is loaded but reports no device",
                driver_version=driver,
            )
        gpus = tuple(_read_device(library, index, runners) for index in range(count))
        return GpuReport(gpus=gpus, driver_version=driver)
    except NvmlFailure as failure:
        return GpuReport(unavailable_reason=reason_for(failure))


def _read_device(library: NvmlLibrary, index: int, runner_pids: Callable[[], frozenset[int]]) -> GpuInfo:
    memory = library.memory(index)
    processes = _optional(lambda: library.process_memory(index))
    runner: int | None = None
    if processes is not None:
        # Nothing runs on this GPU: no need to ask which processes are runners.
        pids = runner_pids() if processes else frozenset()
        held = [used for pid, used in processes if pid in pids]
        runner = None if any(used is None for used in held) else sum(used or 0 for used in held)
    return GpuInfo(
        index=index,
        name=library.device_name(index),
        vram_total_bytes=memory.total,
        vram_used_bytes=memory.used,
        vram_free_bytes=memory.free,
        utilization_percent=_optional(lambda: library.utilization_percent(index)),
        temperature_c=_optional(lambda: library.temperature_c(index)),
        power_w=_optional(lambda: library.power_w(index)),
        runner_vram_bytes=runner,
        vram_reserved_bytes=memory.reserved,
    )


T = TypeVar("T")


def _optional(read: Callable[[], T]) -> T | None:
    """A figure some GPUs do not report becomes None; other failures still propagate."""
    try:
        return read()
    except NvmlFailure as failure:
        if failure.code in (NOT_SUPPORTED, FUNCTION_NOT_FOUND):
            return None
        raise


class PynvmlLibrary:
    """`NvmlLibrary` over the real driver. Initialises once; `shutdown` releases it.

    `module` is `pynvml`, imported on the first `init` unless given: tests pass a stand-in with the
    same names to play a driver that is not on the machine.
    """

    def __init__(self, module: Any = None) -> None:
        self._module: Any = module
        self._nvml: Any = None
        self._handles: dict[int, Any] = {}
        self._missing_library: NvmlFailure | None = None
        # Devices whose driver refused the v2 memory call; asking again each sample is waste.
        self._memory_v1_only: set[int] = set()

    def init(self) -> None:
        if self._nvml is not None:
            return
        if self._missing_library is not None:
            # A driver does not appear while we run; looking for it again each refresh is waste.
            raise self._missing_library
        if self._module is None:
            import pynvml  # deferred: loading the module costs start-up time on every launch

            self._module = pynvml
        try:
            self._call(self._module.nvmlInit)
        except NvmlFailure as failure:
            if failure.code == LIBRARY_NOT_FOUND:
                self._missing_library = failure
            raise
        self._nvml = self._module

    def shutdown(self) -> None:
        if self._nvml is None:
            return
        nvml, self._nvml = self._nvml, None
        self._handles.clear()
        # The driver may already be gone; then there is nothing left to release.
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()

    def driver_version(self) -> str:
        return _text(self._call(self._loaded().nvmlSystemGetDriverVersion))

    def device_count(self) -> int:
        return int(self._call(self._loaded().nvmlDeviceGetCount))

    def device_name(self, index: int) -> str:
        return _text(self._call(self._loaded().nvmlDeviceGetName, self._handle(index)))

    def memory(self, index: int) -> MemoryReading:
        nvml, handle = self._loaded(), self._handle(index)
        # v2 splits the driver's reservation out of "used" (nvidia-ml-py >= 11.510 has it); drivers
        # older than the call answer "function not found", some devices "not supported".
        version = getattr(nvml, "nvmlMemory_v2", None)
        if version is not None and index not in self._memory_v1_only:
            try:
                info = self._call(nvml.nvmlDeviceGetMemoryInfo, handle, version)
                return MemoryReading(int(info.total), int(info.used), int(info.free), int(info.reserved))
            except NvmlFailure as failure:
                if failure.code not in (FUNCTION_NOT_FOUND, NOT_SUPPORTED):
                    raise
                self._memory_v1_only.add(index)
        info = self._call(nvml.nvmlDeviceGetMemoryInfo, handle)
        return MemoryReading(int(info.total), int(info.used), int(info.free))

    def utilization_percent(self, index: int) -> int:
        rates = self._call(self._loaded().nvmlDeviceGetUtilizationRates, self._handle(index))
        return int(rates.gpu)

    def temperature_c(self, index: int) -> int:
        nvml = self._loaded()
        return int(self._call(nvml.nvmlDeviceGetTemperature, self._handle(index), nvml.NVML_TEMPERATURE_GPU))

    def power_w(self, index: int) -> float:
        return float(self._call(self._loaded().nvmlDeviceGetPowerUsage, self._handle(index))) / 1000

    def process_memory(self, index: int) -> list[tuple[int, int | None]]:
        nvml = self._loaded()
        # The versioned call where the driver has it (it also sees MIG processes), else the old one.
        query = getattr(nvml, "nvmlDeviceGetComputeRunningProcesses_v3", None)
        try:
            processes = self._call(query or nvml.nvmlDeviceGetComputeRunningProcesses, self._handle(index))
        except NvmlFailure as failure:
            if query is None or failure.code != FUNCTION_NOT_FOUND:
                raise
            processes = self._call(nvml.nvmlDeviceGetComputeRunningProcesses, self._handle(index))
        # WDDM and WSL report no per-process memory: None, not zero.
        return [(int(p.pid), None if p.usedGpuMemory is None else int(p.usedGpuMemory)) for p in processes]

    def _loaded(self) -> Any:
        if self._nvml is None:
            raise NvmlFailure(1, "NVML is not initialised")
        return self._nvml

    def _handle(self, index: int) -> Any:
        if index not in self._handles:
            nvml = self._loaded()
            self._handles[index] = self._call(nvml.nvmlDeviceGetHandleByIndex, index)
        return self._handles[index]

    def _call(self, function: Callable[..., T], *args: Any) -> T:
        try:
            return function(*args)
        except self._module.NVMLError as error:
            raise NvmlFailure(int(error.value), str(error)) from error


def _text(value: str | bytes) -> str:
    # nvidia-ml-py returned bytes before 11.515; both still exist in the wild.
    return value.decode(errors="replace") if isinstance(value, bytes) else value
