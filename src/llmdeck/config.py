"""Settings and where each one comes from.

The precedence is the one users expect from Ollama's own tools: a command-line flag beats the
environment, which beats the built-in default. (`config.toml` joins between the environment and the
defaults when it lands; this module is where it will be read.)
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

DEFAULT_OLLAMA_PORT = 11434
DEFAULT_HOST = f"http://127.0.0.1:{DEFAULT_OLLAMA_PORT}"

Source = Literal["command line", "environment", "default"]
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
T = TypeVar("T")


class HostError(ValueError):
    """An Ollama address that cannot be turned into a URL."""


def normalize_host(raw: str) -> str:
    """Turn an `OLLAMA_HOST`-style value into the URL a client connects to.

    Follows the rules of Ollama's own `envconfig.Host` and ollama-python's `_parse_host`, so that
    llmdeck talks to the same server the `ollama` CLI would: a bare host gets `http://` and port
    11434; an explicit `http://` or `https://` without a port gets 80 or 443; a path is kept.
    """
    # Ollama strips surrounding quotes too: OLLAMA_HOST="0.0.0.0" set with quotes in a unit file.
    value = raw.strip().strip("\"'").strip()
    if not value:
        return DEFAULT_HOST
    scheme, sep, rest = value.partition("://")
    scheme = scheme.lower()
    default_port = DEFAULT_OLLAMA_PORT
    if not sep:
        scheme, rest = "http", value
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    else:
        raise HostError(f"unsupported scheme {scheme!r} in Ollama address {raw!r} (use http or https)")

    hostport, _, path = rest.partition("/")
    path = path.rstrip("/")
    host, port = _split_host_port(hostport, raw)
    if not host:
        host = "127.0.0.1"
    if not host.startswith("[") and not _HOSTNAME.fullmatch(host):
        raise HostError(f"{host!r} is not a host name or address in Ollama address {raw!r}")
    url = f"{scheme}://{host}:{port if port is not None else default_port}"
    return f"{url}/{path}" if path else url


def _split_host_port(hostport: str, raw: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise HostError(f"unclosed '[' in Ollama address {raw!r}")
        host, tail = hostport[: end + 1], hostport[end + 1 :]
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise HostError(f"{host!r} is not an IPv6 address in Ollama address {raw!r}") from exc
        if not tail:
            return host, None
        if not tail.startswith(":"):
            raise HostError(f"unexpected text after ']' in Ollama address {raw!r}")
        return host, _parse_port(tail[1:], raw)
    if hostport.count(":") > 1:
        # A bare IPv6 address without brackets has no port.
        try:
            ipaddress.IPv6Address(hostport)
        except ValueError as exc:
            raise HostError(f"cannot read Ollama address {raw!r}") from exc
        return f"[{hostport}]", None
    host, sep, port = hostport.partition(":")
    return host, _parse_port(port, raw) if sep else None


def _parse_port(text: str, raw: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise HostError(f"invalid port {text!r} in Ollama address {raw!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class Setting(Generic[T]):
    value: T
    source: Source


@dataclass(frozen=True, slots=True)
class Settings:
    """What the app needs to start. Immutable: a change of host means a new service."""

    host: Setting[str] = field(default_factory=lambda: Setting(DEFAULT_HOST, "default"))
    # Connecting to a local server takes milliseconds; a long wait only hides a wrong address.
    connect_timeout_s: float = 3.0
    # Reconnect backoff while the server is down: start fast so a just-started server is picked
    # up at once, then back off so a server that stays down costs nothing.
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 10.0
    # While connected, how often to check the server is still there and its model list unchanged.
    heartbeat_s: float = 5.0
    # Gauges refresh twice a second: live enough to watch VRAM fill, cheap enough to leave running.
    hardware_refresh_s: float = 0.5
    # What Ollama has loaded changes rarely unless a reply streams; then it is read at the gauge rate.
    # (The time left before unloading counts down on screen between reads.)
    running_idle_refresh_s: float = 5.0


def resolve_host(cli_host: str | None, environ: Mapping[str, str] | None = None) -> Setting[str]:
    env = os.environ if environ is None else environ
    if cli_host:
        return Setting(normalize_host(cli_host), "command line")
    if env.get("OLLAMA_HOST", "").strip():
        return Setting(normalize_host(env["OLLAMA_HOST"]), "environment")
    return Setting(DEFAULT_HOST, "default")
