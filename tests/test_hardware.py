from __future__ import annotations

import ctypes.util
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
from helpers import DATA
from nvml_recordings import RecordedDevice, RecordedNvml

from llmdeck.hardware import HardwareSnapshot, SnapshotError, SystemProbe
from llmdeck.hardware.nvml import (
    DRIVER_NOT_LOADED,
    FUNCTION_NOT_FOUND,
    GPU_IS_LOST,
    LIBRARY_NOT_FOUND,
    NOT_SUPPORTED,
    MemoryReading,
    NvmlFailure,
    PynvmlLibrary,
    read_gpus,
)
from llmdeck.hardware.probe import _linux_cpu_model, core_counts

MIB = 1024**2


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


def runner_1234() -> frozenset[int]:
    return frozenset({1234})


def test_temperature_power_and_the_runners_own_vram() -> None:
    busy = RecordedDevice(
        "NVIDIA GeForce RTX 4090",
        MemoryReading(total=24564 * MIB, used=9000 * MIB, free=15564 * MIB),
        97,
        temperature=71,
        power_mw=412_345,
        processes=[(1234, 8600 * MIB), (999, 300 * MIB)],  # 1234 is the runner, 999 a browser
    )
    [gpu] = read_gpus(RecordedNvml([busy]), runner_pids=runner_1234).gpus
    assert (gpu.temperature_c, gpu.runner_vram_bytes) == (71, 8600 * MIB)
    assert gpu.power_w == pytest.approx(412.345)
    # WDDM and WSL: per-process memory is not available, which is not the same as none.
    wddm = RecordedDevice("NVIDIA GeForce RTX 3060", RTX_3090.memory, 5, processes=[(1234, None)])
    assert read_gpus(RecordedNvml([wddm]), runner_pids=runner_1234).gpus[0].runner_vram_bytes is None
    not_supported = NvmlFailure(NOT_SUPPORTED, "Not Supported")
    unsupported = RecordedDevice(
        "Tesla T4", RTX_3090.memory, 5, temperature=not_supported, power_mw=not_supported
    )
    [t4] = read_gpus(RecordedNvml([unsupported])).gpus
    assert (t4.temperature_c, t4.power_w, t4.runner_vram_bytes) == (None, None, 0)


def test_the_drivers_reserved_vram_from_the_v2_call() -> None:
    # nvidia-smi -q on driver 550: FB Memory Usage Total 24576, Reserved 310, Used 1111, Free 23155 MiB.
    v2 = RecordedDevice(
        "NVIDIA GeForce RTX 3090",
        MemoryReading(24576 * MIB, used=1111 * MIB, free=23155 * MIB, reserved=310 * MIB),
        7,
    )
    [gpu] = read_gpus(RecordedNvml([v2])).gpus
    assert (gpu.vram_reserved_bytes, gpu.vram_used_bytes, gpu.vram_free_bytes) == (
        310 * MIB,
        1111 * MIB,
        23155 * MIB,
    )
    # v1 only: "used" includes the reservation, which is then not known on its own.
    assert read_gpus(RecordedNvml([RTX_3090])).gpus[0].vram_reserved_bytes is None


class CountingRunners:
    def __init__(self, pids: frozenset[int] = frozenset()) -> None:
        self.pids = pids
        self.calls = 0

    def __call__(self) -> frozenset[int]:
        self.calls += 1
        return self.pids


def test_processes_are_listed_only_when_a_gpu_reports_some_and_then_once() -> None:
    runners = CountingRunners(frozenset({1234}))
    idle = RecordedDevice("NVIDIA GeForce RTX 3090", RTX_3090.memory, 0, processes=[])
    assert [gpu.runner_vram_bytes for gpu in read_gpus(RecordedNvml([idle, idle]), runners).gpus] == [0, 0]
    not_said = RecordedDevice(
        "Tesla T4", RTX_3090.memory, 0, processes=NvmlFailure(NOT_SUPPORTED, "Not Supported")
    )
    assert read_gpus(RecordedNvml([not_said]), runners).gpus[0].runner_vram_bytes is None
    read_gpus(RecordedNvml(init_failure=NvmlFailure(LIBRARY_NOT_FOUND, "x")), runners)
    assert runners.calls == 0
    busy = RecordedDevice("NVIDIA GeForce RTX 3090", RTX_3090.memory, 90, processes=[(1234, 4000 * MIB)])
    both = read_gpus(RecordedNvml([busy, busy, idle]), runners)
    assert [gpu.runner_vram_bytes for gpu in both.gpus] == [4000 * MIB, 4000 * MIB, 0]
    assert runners.calls == 1


def test_system_probe_does_not_list_processes_without_gpu_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    listed: list[object] = []

    def process_iter(*args: object, **kwargs: object) -> list[Any]:
        listed.append(args)
        return [SimpleNamespace(info={"pid": 1234, "name": "ollama"})]

    monkeypatch.setattr(psutil, "process_iter", process_iter)
    for nvml in (
        RecordedNvml(init_failure=NvmlFailure(LIBRARY_NOT_FOUND, "libnvidia-ml.so not found")),
        RecordedNvml([RTX_3090]),  # a GPU that runs nothing
    ):
        probe = SystemProbe(nvml)
        probe.snapshot()
        probe.snapshot()
        assert listed == []
    [gpu] = SystemProbe(RecordedNvml([replace_processes(RTX_3090, [(1234, 700 * MIB)])])).snapshot().gpu.gpus
    assert gpu.runner_vram_bytes == 700 * MIB
    assert len(listed) == 1


def replace_processes(device: RecordedDevice, processes: list[tuple[int, int | None]]) -> RecordedDevice:
    return RecordedDevice(device.name, device.memory, device.utilization, processes=processes)


def test_core_counts_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    core_counts.cache_clear()
    calls: list[bool] = []

    def cpu_count(logical: bool = True) -> int:
        calls.append(logical)
        return 16 if logical else 8

    monkeypatch.setattr(psutil, "cpu_count", cpu_count)
    try:
        probe = SystemProbe(RecordedNvml(init_failure=NvmlFailure(LIBRARY_NOT_FOUND, "x")))
        cpus = [probe.snapshot().cpu for _ in range(3)]
        assert {(cpu.physical_cores, cpu.logical_cores) for cpu in cpus} == {(8, 16)}
        assert sorted(calls) == [False, True]
    finally:
        core_counts.cache_clear()


class FakeNvmlError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


class FakePynvml:
    """The names of `pynvml` that `memory` uses, over one card whose driver may refuse the v2 call."""

    NVMLError = FakeNvmlError
    nvmlMemory_v2: int | None = 0x02000028

    def __init__(self, v2_failure: int | None = None) -> None:
        self.v2_failure = v2_failure
        self.calls: list[str] = []

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetMemoryInfo(self, handle: int, version: int | None = None) -> SimpleNamespace:
        self.calls.append("v1" if version is None else "v2")
        if version is None:
            return SimpleNamespace(total=24576 * MIB, used=1421 * MIB, free=23155 * MIB)
        assert version == self.nvmlMemory_v2
        if self.v2_failure is not None:
            raise FakeNvmlError(self.v2_failure)
        return SimpleNamespace(total=24576 * MIB, reserved=310 * MIB, used=1111 * MIB, free=23155 * MIB)


class OldPynvml(FakePynvml):
    """nvidia-ml-py before 11.510: no v2 call at all."""

    nvmlMemory_v2 = None


def test_pynvml_memory_uses_v2_and_falls_back_to_v1_once() -> None:
    v2 = FakePynvml()
    library = PynvmlLibrary(v2)
    library.init()
    assert library.memory(0) == MemoryReading(24576 * MIB, 1111 * MIB, 23155 * MIB, reserved=310 * MIB)
    assert v2.calls == ["v2"]
    for code in (FUNCTION_NOT_FOUND, NOT_SUPPORTED):
        old_driver = FakePynvml(v2_failure=code)
        library = PynvmlLibrary(old_driver)
        library.init()
        readings = [library.memory(0) for _ in range(3)]
        assert readings == [MemoryReading(24576 * MIB, 1421 * MIB, 23155 * MIB)] * 3
        # Refused once, remembered: later samples go straight to v1.
        assert old_driver.calls == ["v2", "v1", "v1", "v1"]
    old_module = OldPynvml()
    library = PynvmlLibrary(old_module)
    library.init()
    assert library.memory(0).reserved is None
    assert old_module.calls == ["v1"]


def test_pynvml_memory_failure_other_than_unsupported_is_not_hidden_by_the_fallback() -> None:
    lost = FakePynvml(v2_failure=GPU_IS_LOST)
    library = PynvmlLibrary(lost)
    library.init()
    with pytest.raises(NvmlFailure) as raised:
        library.memory(0)
    assert raised.value.code == GPU_IS_LOST
    assert lost.calls == ["v2"]


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
    # Recorded before the driver's reservation and unified memory were: both unknown, not an error.
    assert "vram_reserved_bytes" not in (DATA / "workstation-rtx4090.json").read_text()
    assert recorded.gpu.gpus[0].vram_reserved_bytes is None
    assert recorded.gpu.unified is None


@pytest.mark.parametrize("content", ["not json", "{}", "[]", json.dumps({"cpu": {}, "memory": {}})])
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
