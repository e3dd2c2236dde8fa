"""Whether the Ollama server runs on this machine: only then do this machine's gauges describe it."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import psutil

Resolver = Callable[[str], Iterable[str]]


def _resolve(name: str) -> list[str]:
    infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def _interface_addresses() -> set[str]:
    return {
        address.address.split("%")[0]
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family in (socket.AF_INET, socket.AF_INET6)
    }


def is_local_host(
    url: str,
    resolve: Resolver = _resolve,
    interface_addresses: Callable[[], set[str]] = _interface_addresses,
) -> bool:
    """True when `url` reaches a server on this machine. Blocks on DNS: call it from a thread.

    A name that does not resolve counts as local: nothing can be said about a remote machine
    that cannot be found, and the offline banner already reports the address.
    """
    host = urlsplit(url).hostname or "127.0.0.1"
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        addresses = [host] if _is_address(host) else list(resolve(host))
    except OSError:
        return True
    local = interface_addresses()
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_loopback or ip.is_unspecified or str(ip) in local:
            return True
    return not addresses


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
