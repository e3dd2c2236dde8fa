"""Whether the Ollama server is this machine: it decides what the gauges and calibrations mean."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from llmdeck.locality import is_local_host

HERE = {"10.1.2.3", "fe80::1", "127.0.0.1", "::1"}


def resolver(table: dict[str, list[str]]) -> Callable[[str], list[str]]:
    def resolve(name: str) -> list[str]:
        if name not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[name]

    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:11434",
        "http://[::1]:11434",
        "http://localhost:11434",
        "http://0.0.0.0:11434",
        "http://10.1.2.3:11434",  # this machine's own LAN address
        "http://workstation:11434",  # a name for it
        "http://nowhere.invalid:11434",  # cannot be resolved: nothing to say it is elsewhere
    ],
)
def test_this_machine(url: str) -> None:
    resolve = resolver({"workstation": ["10.1.2.3"]})
    assert is_local_host(url, resolve, lambda: HERE)


@pytest.mark.parametrize(
    "url", ["http://192.168.1.50:11434", "https://gpubox.example:443", "http://[2001:db8::5]"]
)
def test_another_machine(url: str) -> None:
    resolve = resolver({"gpubox.example": ["203.0.113.7", "2001:db8::7"]})
    assert not is_local_host(url, resolve, lambda: HERE)


def test_the_real_resolver_and_interfaces_on_this_machine() -> None:
    assert is_local_host("http://127.0.0.1:11434")
    assert is_local_host(f"http://{socket.gethostname()}:11434")
    assert not is_local_host("http://192.0.2.1:11434")  # TEST-NET-1, never assigned to a host
