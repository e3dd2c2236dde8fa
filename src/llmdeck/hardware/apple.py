"""Apple Silicon: no NVML, one pool of RAM that the GPU may wire up to a limit.

The figures come from sysctls, read through `sysctlbyname` (not the `sysctl` command: the sampler
runs every second and a process spawn each time would cost more than the whole rest of a sample).
The reader is a plain function so tests can feed recorded values on any OS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

from llmdeck.hardware.snapshot import UnifiedMemory

GIB = 1024**3
MIB = 1024**2

# The raw bytes `sysctlbyname` returns for a name, or None where the name does not exist.
SysctlReader = Callable[[str], bytes | None]

WIRED_LIMIT_SYSCTL = "iogpu.wired_limit_mb"
DEFAULT_LIMIT_SOURCE = "macOS default: 2/3 of RAM up to 36 GiB, 3/4 above"
APPLE_SILICON_REASON = "no NVIDIA GPU (Apple Silicon: unified memory)"


def metal_working_set(total_ram: int) -> int:
    """The share of unified memory macOS lets the GPU use (`recommendedMaxWorkingSetSize`)."""
    return total_ram * 3 // 4 if total_ram > 36 * GIB else total_ram * 2 // 3


def is_apple_silicon(system: str, machine: str, sysctl: SysctlReader) -> bool:
    """`system` is `sys.platform`, `machine` is `platform.machine()`."""
    if system != "darwin":
        return False
    # An x86_64 Python under Rosetta says "x86_64", yet the GPU Ollama uses is still Apple's.
    return machine == "arm64" or sysctl_int(sysctl, "sysctl.proc_translated") == 1


def unified_memory(
    sysctl: SysctlReader, total_ram: int, wired_bytes: int | None, chip: str | None
) -> UnifiedMemory:
    limit_mb = sysctl_int(sysctl, WIRED_LIMIT_SYSCTL)
    # 0, the default, means macOS decides; the GPU cannot wire more than there is.
    if limit_mb is not None and limit_mb > 0:
        return UnifiedMemory(min(limit_mb * MIB, total_ram), WIRED_LIMIT_SYSCTL, wired_bytes, chip)
    return UnifiedMemory(metal_working_set(total_ram), DEFAULT_LIMIT_SOURCE, wired_bytes, chip)


def sysctl_text(sysctl: SysctlReader, name: str) -> str | None:
    raw = sysctl(name)
    if raw is None:
        return None
    text = raw.split(b"\0", 1)[0].decode(errors="replace").strip()
    return text or None


def sysctl_int(sysctl: SysctlReader, name: str) -> int | None:
    raw = sysctl(name)
    # CTLTYPE_INT is 4 bytes, CTLTYPE_QUAD 8; Apple Silicon is little-endian.
    if raw is None or len(raw) not in (4, 8):
        return None
    return int.from_bytes(raw, "little", signed=True)


def read_sysctl(name: str) -> bytes | None:
    """The real reader: `sysctlbyname(3)`; None off macOS or for a name the kernel does not have."""
    function = _sysctlbyname()
    if function is None:
        return None
    key = name.encode()
    size = ctypes.c_size_t(0)
    if function(key, None, ctypes.byref(size), None, 0) != 0:
        return None
    buffer = ctypes.create_string_buffer(size.value)
    if function(key, buffer, ctypes.byref(size), None, 0) != 0:
        return None
    return buffer.raw[: size.value]


@cache
def _sysctlbyname() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        function = libc.sysctlbyname
    except (OSError, AttributeError):  # not macOS (or a BSD): glibc has no sysctlbyname
        return None
    function.argtypes = [
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.c_void_p,
        ctypes.c_size_t,
    ]
    function.restype = ctypes.c_int
    result: Callable[..., int] = function
    return result
