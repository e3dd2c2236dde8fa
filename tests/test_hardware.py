from __future__ import annotations

import ctypes.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from helpers import DATA

from llmdeck.hardware import HardwareSnapshot, SnapshotError, SystemProbe
from llmdeck.hardware.nvml import (
    DRIVER_NOT_LOADED,
    GPU_IS_LOST,
    LIBRARY_NOT_FOUND,
    NOT_SUPPORTED,
    MemoryReading,
    NvmlFailure,
    PynvmlLibrary,
    read_gpus,
)
from llmdeck.hardware.probe import _linux_cpu_model

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


RTX_3090 = RecordedDevice(
    "NVIDIA GeForce RTX 3090", MemoryReading(total=24576 * MIB, used=1421 * MIB, free=23155 * MIB), 7
)
A100 = RecordedDevice(
    "NVIDIA A100 80GB PCIe",
    MemoryReading(total=81920 * MIB, used=4 * MIB, free=81916 * MIB),
    NvmlFailure(NOT_SUPPORTED, "Not Supported"),
)


def test_every_gpu_is_reported_with_its_vram() -> None:
    report = read_gpus(RecordedNvml([RTX_3090, A100]))
    assert report.unavailable_reason is None
    assert [gpu.name for gpu in report.gpus] == ["NVIDIA GeForce RTX 3090", "NVIDIA A100 80GB PCIe"]
    first = report.gpus[0]
    assert (first.vram_total_bytes, first.vram_used_bytes, first.vram_free_bytes) == (
        24576 * MIB,
        1421 * MIB,
        23155 * MIB,
    )
    assert first.utilization_percent == 7
    # "Not supported" is an unknown figure, not a zero.
    assert report.gpus[1].utilization_percent is None
    assert report.driver_version == "550.120"


def test_temperature_power_and_the_runners_own_vram() -> None:
    busy = RecordedDevice(
        "NVIDIA GeForce RTX 4090",
        MemoryReading(total=24564 * MIB, used=9000 * MIB, free=15564 * MIB),
        97,
        temperature=71,
        power_mw=412_345,
        processes=[(1234, 8600 * MIB), (999, 300 * MIB)],  # 1234 is the runner, 999 a browser
    )
    [gpu] = read_gpus(RecordedNvml([busy]), runner_pids=frozenset({1234})).gpus
    assert (gpu.temperature_c, gpu.runner_vram_bytes) == (71, 8600 * MIB)
    assert gpu.power_w == pytest.approx(412.345)
    # WDDM and WSL: per-process memory is not available, which is not the same as none.
    wddm = RecordedDevice("NVIDIA GeForce RTX 3060", RTX_3090.memory, 5, processes=[(1234, None)])
    assert read_gpus(RecordedNvml([wddm]), runner_pids=frozenset({1234})).gpus[0].runner_vram_bytes is None
    not_supported = NvmlFailure(NOT_SUPPORTED, "Not Supported")
    unsupported = RecordedDevice(
        "Tesla T4", RTX_3090.memory, 5, temperature=not_supported, power_mw=not_supported
    )
    [t4] = read_gpus(RecordedNvml([unsupported])).gpus
    assert (t4.temperature_c, t4.power_w, t4.runner_vram_bytes) == (None, None, 0)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (LIBRARY_NOT_FOUND, "driver is not installed"),
        (DRIVER_NOT_LOADED, "not loaded"),
        (999, "NVML error 999"),
    ],
)
def test_no_gpu_says_why(code: int, words: str) -> None:
    report = read_gpus(RecordedNvml(init_failure=NvmlFailure(code, "x")))
    assert report.gpus == ()
    assert report.unavailable_reason is not None
    assert words in report.unavailable_reason


def test_driver_without_devices_is_not_silent() -> None:
    report = read_gpus(RecordedNvml([]))
    assert report.gpus == ()
    assert "reports no device" in (report.unavailable_reason or "")


def test_gpu_lost_mid_run_becomes_a_reason_not_an_exception() -> None:
    nvml = RecordedNvml([RTX_3090], lost_after_reads=1)
    assert read_gpus(nvml).gpus[0].name == "NVIDIA GeForce RTX 3090"
    later = read_gpus(nvml)
    assert later.gpus == ()
    assert "GPU lost" in (later.unavailable_reason or "")


def test_real_nvml_on_this_machine() -> None:
    """The real pynvml path: without a driver it must say so; with one it must list GPUs."""
    library = PynvmlLibrary()
    try:
        report = read_gpus(library)
        report_again = read_gpus(library)
    finally:
        library.shutdown()
    if ctypes.util.find_library("nvidia-ml") is None:
        assert report.gpus == ()
        assert report.unavailable_reason is not None
        assert report.unavailable_reason.startswith("no NVIDIA GPU")
        assert report_again == report
    else:
        assert report.gpus or report.unavailable_reason


def test_system_probe_reads_this_machine() -> None:
    probe = SystemProbe()
    try:
        snapshot = probe.snapshot()
    finally:
        probe.close()
    assert snapshot.source == "measured"
    assert snapshot.cpu.model
    assert snapshot.cpu.logical_cores and snapshot.cpu.logical_cores >= 1
    assert 0 < snapshot.memory.available_bytes <= snapshot.memory.total_bytes
    assert snapshot.gpu.gpus or snapshot.gpu.unavailable_reason


def test_snapshot_survives_a_round_trip_through_json(tmp_path: Path) -> None:
    recorded = HardwareSnapshot.load(DATA / "workstation-rtx4090.json")
    path = tmp_path / "box.json"
    path.write_text(recorded.to_json())
    assert HardwareSnapshot.load(path) == recorded
    assert recorded.gpu.gpus[0].name == "NVIDIA GeForce RTX 4090"


@pytest.mark.parametrize("content", ["not json", "{}", json.dumps({"cpu": {}, "memory": {}})])
def test_broken_snapshot_file_is_named_in_the_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(SnapshotError, match=r"broken\.json"):
        HardwareSnapshot.load(path)


def test_missing_snapshot_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="cannot read hardware snapshot"):
        HardwareSnapshot.load(tmp_path / "absent.json")


def test_cpu_model_from_x86_and_arm_cpuinfo(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: AMD Ryzen 9 7950X 16-Core Processor\n")
    assert _linux_cpu_model(x86) == "AMD Ryzen 9 7950X 16-Core Processor"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 48.00\n\nModel\t: Raspberry Pi 5 Model B Rev 1.0\n")
    assert _linux_cpu_model(arm) == "Raspberry Pi 5 Model B Rev 1.0"
    assert _linux_cpu_model(tmp_path / "absent") is None
