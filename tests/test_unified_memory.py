"""Apple Silicon: no NVML, the GPU's share of the RAM, played on any OS with recorded sysctls."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from helpers import DATA
from test_cli import run
from test_hardware import RecordedNvml

from llmdeck.fit.target import build_target, metal_working_set
from llmdeck.hardware import HardwareSnapshot, SystemProbe, UnifiedMemory
from llmdeck.hardware.apple import (
    APPLE_SILICON_REASON,
    DEFAULT_LIMIT_SOURCE,
    WIRED_LIMIT_SYSCTL,
    SysctlReader,
    is_apple_silicon,
    read_sysctl,
)
from llmdeck.hardware.nvml import LIBRARY_NOT_FOUND, NvmlFailure

GIB = 1024**3
MIB = 1024**2
MAC = DATA / "macbook-m2pro.json"


def sysctls(values: dict[str, int | str]) -> SysctlReader:
    """Answers as `sysctlbyname` gives them: NUL-terminated strings, 4-byte little-endian ints."""

    def read(name: str) -> bytes | None:
        value = values.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            return value.encode() + b"\0"
        return value.to_bytes(4, "little", signed=True)

    return read


def no_sysctl(name: str) -> bytes | None:
    raise AssertionError(f"sysctl {name} read off macOS")


class NoNvml:
    """macOS has no NVML: the probe must not even try it there."""

    def init(self) -> None:
        raise AssertionError("NVML used on a Mac")

    def shutdown(self) -> None:
        pass


@pytest.fixture
def mac_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # psutil on macOS: 32 GiB, 20 GiB available, 5 GiB wired (kernel and GPU together).
    memory = SimpleNamespace(total=32 * GIB, available=20 * GIB, wired=5 * GIB)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory)


def mac_probe(values: dict[str, int | str], machine: str = "arm64") -> SystemProbe:
    return SystemProbe(NoNvml(), system="darwin", machine=machine, sysctl=sysctls(values))  # type: ignore[arg-type]


@pytest.mark.usefixtures("mac_memory")
def test_apple_silicon_reports_unified_memory_not_a_missing_driver() -> None:
    probe = mac_probe({"machdep.cpu.brand_string": "Apple M2 Pro", WIRED_LIMIT_SYSCTL: 0})
    gpu = probe.snapshot().gpu
    assert gpu.gpus == ()
    assert gpu.unavailable_reason == APPLE_SILICON_REASON
    assert "driver" not in gpu.unavailable_reason
    assert gpu.unified == UnifiedMemory(
        gpu_limit_bytes=metal_working_set(32 * GIB),
        limit_source=DEFAULT_LIMIT_SOURCE,
        wired_bytes=5 * GIB,
        chip="Apple M2 Pro",
    )
    assert gpu.unified.gpu_limit_bytes == 32 * GIB * 2 // 3


@pytest.mark.usefixtures("mac_memory")
def test_a_raised_wired_limit_is_the_gpus_limit_and_is_read_each_sample() -> None:
    values: dict[str, int | str] = {"machdep.cpu.brand_string": "Apple M2 Pro", WIRED_LIMIT_SYSCTL: 28672}
    probe = mac_probe(values)
    unified = probe.snapshot().gpu.unified
    assert unified is not None
    assert (unified.gpu_limit_bytes, unified.limit_source) == (28 * GIB, WIRED_LIMIT_SYSCTL)
    # `sudo sysctl iogpu.wired_limit_mb=0` while we run: back to the macOS default.
    values[WIRED_LIMIT_SYSCTL] = 0
    later = probe.snapshot().gpu.unified
    assert later is not None and later.limit_source == DEFAULT_LIMIT_SOURCE
    # More than the machine has cannot be wired.
    values[WIRED_LIMIT_SYSCTL] = 64 * 1024
    capped = probe.snapshot().gpu.unified
    assert capped is not None and capped.gpu_limit_bytes == 32 * GIB


def test_which_macs_are_apple_silicon() -> None:
    assert is_apple_silicon("darwin", "arm64", sysctls({}))
    # An x86_64 Python under Rosetta on an M-series Mac.
    assert is_apple_silicon("darwin", "x86_64", sysctls({"sysctl.proc_translated": 1}))
    assert not is_apple_silicon("darwin", "x86_64", sysctls({"sysctl.proc_translated": 0}))
    assert not is_apple_silicon("darwin", "x86_64", sysctls({}))  # an Intel Mac
    assert not is_apple_silicon("linux", "aarch64", no_sysctl)


def test_off_macos_no_sysctl_is_read() -> None:
    nvml = RecordedNvml(init_failure=NvmlFailure(LIBRARY_NOT_FOUND, "x"))
    snapshot = SystemProbe(nvml, system="linux", machine="aarch64", sysctl=no_sysctl).snapshot()
    assert snapshot.gpu.unified is None
    assert (snapshot.gpu.unavailable_reason or "").startswith("no NVIDIA GPU: the NVIDIA driver")


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the reader off macOS")
def test_the_real_sysctl_reader_is_harmless_off_macos() -> None:
    assert read_sysctl("hw.memsize") is None


@pytest.mark.usefixtures("mac_memory")
def test_unified_memory_survives_json_and_old_files_load_without_it(tmp_path: Path) -> None:
    measured = mac_probe({"machdep.cpu.brand_string": "Apple M2 Pro", WIRED_LIMIT_SYSCTL: 24576}).snapshot()
    path = tmp_path / "mac.json"
    path.write_text(measured.to_json())
    assert HardwareSnapshot.load(path) == replace(measured, source="recorded")
    assert json.loads(measured.to_json())["gpu"]["unified"]["limit_source"] == WIRED_LIMIT_SYSCTL
    old = json.loads(MAC.read_text())
    del old["gpu"]["unified"]
    assert HardwareSnapshot.from_json(json.dumps(old)).gpu.unified is None


def test_a_mac_is_planned_as_one_metal_gpu_of_its_wired_limit() -> None:
    snapshot = HardwareSnapshot.load(MAC)
    target = build_target(snapshot)
    [gpu] = target.gpus
    assert (gpu.name, gpu.library, gpu.total_bytes) == ("Apple M2 Pro", "metal", 22906492245)
    # The GPU's free share is the RAM available, up to the limit.
    assert gpu.free_bytes == 20 * GIB
    assert target.unified_memory
    assert target.gpu_bandwidths_gbps == (200.0,) and target.ram_bandwidth_gbps == 200.0
    assert any("macOS default" in line and "200 GB/s (looked up)" in line for line in target.provenance)
    assert not any(line.startswith("no GPU") for line in target.provenance)

    raised = replace(
        snapshot,
        gpu=replace(snapshot.gpu, unified=UnifiedMemory(28 * GIB, WIRED_LIMIT_SYSCTL, None, "Apple M3 Max")),
        memory=replace(snapshot.memory, available_bytes=30 * GIB),
    )
    target = build_target(raised)
    [gpu] = target.gpus
    assert (gpu.total_bytes, gpu.free_bytes) == (28 * GIB, 28 * GIB)
    # An M3 Max has a 30-core (300 GB/s) or a 40-core (400 GB/s) GPU: the chip alone does not say.
    assert target.gpu_bandwidths_gbps == (None,)
    [line] = [line for line in target.provenance if line.startswith("GPU 0")]
    assert "sysctl iogpu.wired_limit_mb" in line and "bandwidth unknown" in line
    # Naming a GPU on the command line still plans for that GPU instead.
    named = build_target(snapshot, gpu_names=["Apple M2 Max (38-core GPU)"])
    assert named.gpus[0].name == "Apple M2 Max (38-core GPU)"


def test_hardware_command_prints_and_records_unified_memory(tmp_path: Path) -> None:
    text = run("--hardware", str(MAC), "hardware")
    assert text.returncode == 0, text.stderr
    assert (
        "GPU   Apple M2 Pro: unified memory, up to 21.3 GiB of RAM "
        "(macOS default: 2/3 of RAM up to 36 GiB, 3/4 above), 5.1 GiB wired now"
    ) in text.stdout
    recorded = run("--hardware", str(MAC), "hardware", "--json")
    assert recorded.returncode == 0, recorded.stderr
    path = tmp_path / "again.json"
    path.write_text(recorded.stdout)
    assert HardwareSnapshot.load(path) == HardwareSnapshot.load(MAC)
    replayed = run("--hardware", str(path), "hardware")
    assert replayed.stdout == text.stdout


def test_fit_on_a_recorded_mac() -> None:
    result = run("--hardware", str(MAC), "--host", "127.0.0.1:9", "fit", "llama3.1:8b", "--json")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["verdict"] == "gpu" and row["processor"] == "100% GPU"
    assert row["tokens_per_s"] is not None
