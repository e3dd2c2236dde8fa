"""NVML readings recorded from real cards, replayed through llmdeck's `NvmlLibrary` adapter.

There is no GPU on the machines that run these tests: the adapter is fed what `nvidia-smi -q`
reported on real cards, including the failures NVML really returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from llmdeck.hardware.nvml import GPU_IS_LOST, MemoryReading, NvmlFailure

MIB = 1024**2


@dataclass
class RecordedDevice:
    name: str
    memory: MemoryReading
    utilization: int | NvmlFailure
    temperature: int | NvmlFailure = 45
    power_mw: int | NvmlFailure = 120_000
    processes: list[tuple[int, int | None]] | NvmlFailure = field(default_factory=list)


@dataclass
class RecordedNvml:
    """NVML readings recorded from real cards (nvidia-smi -q figures), replayed through the adapter."""

    devices: list[RecordedDevice] = field(default_factory=list)
    init_failure: NvmlFailure | None = None
    lost_after_reads: int | None = None
    reads: int = 0

    def init(self) -> None:
        if self.init_failure:
            raise self.init_failure

    def shutdown(self) -> None:
        pass

    def driver_version(self) -> str:
        return "550.120"

    def device_count(self) -> int:
        return len(self.devices)

    def device_name(self, index: int) -> str:
        return self.devices[index].name

    def memory(self, index: int) -> MemoryReading:
        self.reads += 1
        if self.lost_after_reads is not None and self.reads > self.lost_after_reads:
            raise NvmlFailure(GPU_IS_LOST, "GPU is lost")
        return self.devices[index].memory

    def utilization_percent(self, index: int) -> int:
        return _reading(self.devices[index].utilization)

    def temperature_c(self, index: int) -> int:
        return _reading(self.devices[index].temperature)

    def power_w(self, index: int) -> float:
        return _reading(self.devices[index].power_mw) / 1000

    def process_memory(self, index: int) -> list[tuple[int, int | None]]:
        return _reading(self.devices[index].processes)


T = TypeVar("T")


def _reading(value: T | NvmlFailure) -> T:
    if isinstance(value, NvmlFailure):
        raise value
    return value


@dataclass
class RecordedSequence:
    """Samples in time: each `snapshot()` of the probe reads the next set of devices, then the last
    one again; a `NvmlFailure` in place of a set is what the driver answered at that moment."""

    samples: Sequence[list[RecordedDevice] | NvmlFailure]
    position: int = -1  # before the first sample

    def _current(self) -> list[RecordedDevice]:
        sample = self.samples[min(self.position, len(self.samples) - 1)]
        if isinstance(sample, NvmlFailure):
            raise sample
        return sample

    def init(self) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def driver_version(self) -> str:
        return "550.120"

    def device_count(self) -> int:
        # The first call of a sample: the next sample starts here.
        self.position += 1
        return len(self._current())

    def device_name(self, index: int) -> str:
        return self._current()[index].name

    def memory(self, index: int) -> MemoryReading:
        return self._current()[index].memory

    def utilization_percent(self, index: int) -> int:
        return _reading(self._current()[index].utilization)

    def temperature_c(self, index: int) -> int:
        return _reading(self._current()[index].temperature)

    def power_w(self, index: int) -> float:
        return _reading(self._current()[index].power_mw) / 1000

    def process_memory(self, index: int) -> list[tuple[int, int | None]]:
        return _reading(self._current()[index].processes)
