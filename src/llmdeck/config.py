"""Settings and where each one comes from.

The precedence is the one users expect from Ollama's own tools: a command-line flag beats the
environment, which beats `config.toml`, which beats the built-in default. The environment layer is
the user's Ollama settings (`OLLAMA_HOST`, `OLLAMA_CONTEXT_LENGTH`, `OLLAMA_KV_CACHE_TYPE`,
`OLLAMA_GPU_OVERHEAD`), read as Ollama reads them, so llmdeck plans for the server they describe.

A value that breaks its rule in the file or in the environment never stops llmdeck: it is ignored
(the next layer applies) and one message says where it is and what was expected.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeGuard, TypeVar

from llmdeck.config_file import ConfigFile, default_config_path, dotted_key, quote, read_config
from llmdeck.units import GIB

DEFAULT_OLLAMA_PORT = 11434
DEFAULT_HOST = f"http://127.0.0.1:{DEFAULT_OLLAMA_PORT}"

KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")
# Faster than 10 Hz is invisible and costs CPU; slower than a minute is not "live".
REFRESH_MIN_S = 0.1
REFRESH_MAX_S = 60.0
# The longest contexts models offer are in the millions of tokens; far beyond that a value is a
# typo, and the memory arithmetic of the planner should not be fed it.
MAX_CONTEXT_LENGTH = 2**24
MAX_GPU_OVERHEAD_GIB = 1024
# Go's time.ParseDuration, which Ollama applies to a keep_alive string: "5m", "1h30m", "-1s", "0".
_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|[-+]?0")
_PLAIN_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
# Ollama turns seconds into a Go time.Duration (int64 nanoseconds): more would overflow it.
MAX_KEEP_ALIVE_S = 2**63 // 10**9
# Gauges refresh once a second, as htop and nvitop do: live enough to watch VRAM fill, and under 1%
# of a core on the first screen (measured: 0.8%; twice a second cost 1.5%, over issue 9's budget).
DEFAULT_REFRESH_S = 1.0

Source = Literal["command line", "environment", "config file", "default"]
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


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
class Setting(Generic[T_co]):
    """A value and where it came from: the variable for the environment, path and line for the file."""

    value: T_co
    source: Source
    variable: str | None = None
    path: Path | None = None
    line: int | None = None

    def describe(self) -> str:
        """`environment OLLAMA_HOST`, `config file /home/u/.config/llmdeck/config.toml, line 4`, …"""
        if self.source == "environment" and self.variable:
            return f"environment {self.variable}"
        if self.source == "config file" and self.path is not None:
            return f"config file {self.path}" + (f", line {self.line}" if self.line is not None else "")
        return self.source


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
    hardware_refresh_s: float = DEFAULT_REFRESH_S
    # What Ollama has loaded changes rarely unless a reply streams; then it is read at the gauge rate.
    # (The time left before unloading counts down on screen between reads.)
    running_idle_refresh_s: float = 5.0
    default_model: str | None = None
    # None: Ollama's default context for the model and server.
    num_ctx: int | None = None
    kv_cache_type: str = "f16"
    theme: str | None = None
    gpu_overhead_bytes: int = 0
    # How long Ollama keeps a model loaded after a request: a Go duration ("5m"), seconds, a
    # negative number for ever, 0 to unload at once. None sends none: the server's
    # OLLAMA_KEEP_ALIVE (5 minutes unless set) applies.
    keep_alive: float | str | None = None
    # Binding id ("app.quit") -> keys ("ctrl+x" or "f10,ctrl+x"); ids are checked by the UI.
    keymap: Mapping[str, str] = field(default_factory=dict)
    # Where llmdeck looked for config.toml (whether or not it exists); None when not looked.
    config_path: Path | None = None
    # One message per value llmdeck could not use (file or environment), each naming where it is.
    config_problems: tuple[str, ...] = ()
    # Config key ("refresh", "context_length", …, "keymap", "keymap.app.quit") -> the value in the
    # file's units (context_length None for Ollama's default, gpu_overhead in GiB) and its source.
    provenance: Mapping[str, Setting[object]] = field(default_factory=dict)


def resolve_host(cli_host: str | None, environ: Mapping[str, str] | None = None) -> Setting[str]:
    """The host from the command line or `OLLAMA_HOST`, else the default.

    Raises HostError: an address given on the command line or in the environment that cannot be
    read stops llmdeck, where Ollama would quietly fall back to its default.
    """
    env = os.environ if environ is None else environ
    if cli_host:
        return Setting(normalize_host(cli_host), "command line")
    if env.get("OLLAMA_HOST", "").strip():
        return Setting(normalize_host(env["OLLAMA_HOST"]), "environment", variable="OLLAMA_HOST")
    return Setting(DEFAULT_HOST, "default")


def check_refresh(seconds: float) -> float:
    if not (math.isfinite(seconds) and REFRESH_MIN_S <= seconds <= REFRESH_MAX_S):
        raise ValueError(f"{seconds:g} s is outside {REFRESH_MIN_S:g} to {REFRESH_MAX_S:g} seconds")
    return seconds


def load_settings(
    *,
    host: str | None = None,
    refresh_s: float | None = None,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Every setting from its strongest layer: command line, environment, config file, default.

    `config_path` is the file named with `--config` (a missing one is then a problem); without
    it, the file in the user's config directory, which need not exist. Raises HostError only for
    a host on the command line or in `OLLAMA_HOST`, as before there was a file.
    """
    env = os.environ if environ is None else environ
    path = default_config_path() if config_path is None else config_path
    layers = _Layers(read_config(path, given=config_path is not None), env)
    host_setting = resolve_host(host, env)
    if host_setting.source == "default":
        host_setting = layers.pick("host", DEFAULT_HOST)
    refresh = layers.pick("refresh", DEFAULT_REFRESH_S, command_line=refresh_s)
    context = layers.pick("context_length", None, variable="OLLAMA_CONTEXT_LENGTH", from_env=_env_context)
    kv_cache = layers.pick("kv_cache_type", "f16", variable="OLLAMA_KV_CACHE_TYPE", from_env=_env_kv_cache)
    overhead = layers.pick("gpu_overhead", 0, variable="OLLAMA_GPU_OVERHEAD", from_env=_env_gpu_overhead)
    default_model = layers.pick("default_model", None)
    theme = layers.pick("theme", None)
    # No environment layer: OLLAMA_KEEP_ALIVE is the server's own default, which applies anyway
    # when llmdeck sends none.
    keep_alive: Setting[float | str | None] = layers.pick("keep_alive", None)
    keymap = layers.keymap
    provenance: dict[str, Setting[object]] = {
        "host": host_setting,
        "default_model": default_model,
        "context_length": context,
        "kv_cache_type": kv_cache,
        "refresh": refresh,
        "theme": theme,
        # Bytes inside, GiB on show: the unit the config file and `fit --gpu-overhead` use.
        "gpu_overhead": _shown_as(overhead, overhead.value / GIB),
        "keep_alive": keep_alive,
        "keymap": keymap,
        **layers.binding_sources,
    }
    return Settings(
        host=host_setting,
        hardware_refresh_s=refresh.value,
        default_model=default_model.value,
        num_ctx=context.value,
        kv_cache_type=kv_cache.value,
        theme=theme.value,
        gpu_overhead_bytes=overhead.value,
        keep_alive=keep_alive.value,
        keymap=MappingProxyType(keymap.value),
        config_path=path,
        config_problems=tuple(layers.problems),
        provenance=MappingProxyType(provenance),
    )


def _shown_as(setting: Setting[object], value: T) -> Setting[T]:
    return Setting(value, setting.source, setting.variable, setting.path, setting.line)


class _Unfit(ValueError):
    """A value that breaks its key's rule; the message is the key's rule, shown with the value."""


_Reader = Callable[[object], object]
# What each key of the file must hold ("refresh must be …, not "fast"") and how it is read; the
# readers give the value as Settings keeps it (context_length 0 -> None, gpu_overhead in bytes).
_RULES: dict[str, str] = {
    "host": 'an Ollama address such as "gpu-box:11434" (a string)',
    "default_model": 'a model name such as "llama3.1:8b"',
    "context_length": f"a whole number of tokens from 0 (Ollama's default) to {MAX_CONTEXT_LENGTH}",
    "kv_cache_type": "one of " + ", ".join(f'"{name}"' for name in KV_CACHE_TYPES),
    "refresh": f"a number of seconds from {REFRESH_MIN_S:g} to {REFRESH_MAX_S:g}",
    "theme": 'a theme name such as "llmdeck-dark"',
    "gpu_overhead": f"a number of GiB from 0 to {MAX_GPU_OVERHEAD_GIB}",
    "keep_alive": 'a duration such as "5m", "1h" or "30s", a number of seconds, -1 (keep the model '
    "loaded) or 0 (unload it after each reply)",
    "keymap": 'a table of binding id = "keys" lines',
}
_BINDING_RULE = 'a key such as "ctrl+x", or keys separated by commas such as "f10,ctrl+x"'
# Ollama's own words for a value it cannot read: it warns and uses its default, and so does llmdeck.
_ENV_RULES = {
    "OLLAMA_CONTEXT_LENGTH": f"a whole number of tokens from 0 to {MAX_CONTEXT_LENGTH}",
    "OLLAMA_KV_CACHE_TYPE": _RULES["kv_cache_type"],
    "OLLAMA_GPU_OVERHEAD": "a whole number of bytes",
}


def _is_int(value: object) -> TypeGuard[int]:
    # TOML's true is not a number, though Python's bool is an int.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return _is_int(value) or isinstance(value, float)


def _read_host(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Unfit
    return normalize_host(value)  # a HostError names what is wrong with the address


def _read_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Unfit
    return value.strip()


def _read_context(value: object) -> int | None:
    if not _is_int(value) or not 0 <= value <= MAX_CONTEXT_LENGTH:
        raise _Unfit
    return value or None


def _read_kv_cache(value: object) -> str:
    if not isinstance(value, str) or value.strip().lower() not in KV_CACHE_TYPES:
        raise _Unfit
    return value.strip().lower()


def _read_refresh(value: object) -> float:
    if not _is_number(value):
        raise _Unfit
    try:
        return check_refresh(float(value))
    except (ValueError, OverflowError):
        raise _Unfit from None


def _read_gpu_overhead(value: object) -> int:
    # Compared before float(): an integer too large for a float must not raise OverflowError.
    if not _is_number(value) or not 0 <= value <= MAX_GPU_OVERHEAD_GIB:
        raise _Unfit
    return round(float(value) * GIB)


def _read_keep_alive(value: object) -> float | str:
    """As Ollama reads `keep_alive`: seconds as a number, or a Go duration string.

    A string of bare seconds ("-1", "300"), which `OLLAMA_KEEP_ALIVE` accepts but the API's JSON
    field does not, becomes the number, so the server takes it.
    """
    if isinstance(value, str) and _PLAIN_NUMBER.fullmatch(value.strip()):
        number = float(value.strip())
        value = int(number) if number.is_integer() else number
    if _is_number(value):
        # Compared as they are: an integer too large for a float must not raise OverflowError.
        if (isinstance(value, float) and not math.isfinite(value)) or value > MAX_KEEP_ALIVE_S:
            raise _Unfit
        return value
    if isinstance(value, str) and _GO_DURATION.fullmatch(value.strip()):
        return value.strip()
    raise _Unfit


_READERS: dict[str, _Reader] = {
    "host": _read_host,
    "default_model": _read_name,
    "context_length": _read_context,
    "kv_cache_type": _read_kv_cache,
    "refresh": _read_refresh,
    "theme": _read_name,
    "gpu_overhead": _read_gpu_overhead,
    "keep_alive": _read_keep_alive,
}


def _env_text(raw: str) -> str:
    # Ollama's envconfig.Var: surrounding spaces and quotes are not part of the value.
    return raw.strip().strip("\"'")


def _env_context(raw: str) -> int | None:
    text = _env_text(raw)
    if not (text.isascii() and text.isdigit()):
        raise _Unfit
    return _read_context(int(text))


def _env_kv_cache(raw: str) -> str:
    return _read_kv_cache(_env_text(raw))


def _env_gpu_overhead(raw: str) -> int:
    text = _env_text(raw)
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**64:
        raise _Unfit
    return int(text)


def _describe(value: object) -> str:
    """A value as the user wrote it in TOML, for "…, not 'fast'"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value) if value else "an empty string"
    if isinstance(value, float):
        return str(value)  # nan, inf and -inf as TOML spells them
    if isinstance(value, int):
        return str(value) if abs(value) < 10**20 else "a number too large"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return "a date or time"  # the only TOML values left


class _Layers:
    """The config file's values, read once, and the environment: each key from its strongest layer."""

    def __init__(self, file: ConfigFile, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ
        self.from_file: dict[str, Setting[Any]] = {}
        self.binding_sources: dict[str, Setting[object]] = {}
        self.keymap: Setting[dict[str, str]] = Setting({}, "default")
        found: list[tuple[int, str]] = []
        for key, value in file.data.items():
            if key == "keymap":
                self._read_keymap(value, found)
            elif key in _READERS:
                self._read(key, value, found)
            else:
                found.append(self._problem((key,), _unknown(key, value)))
        # In the order of the file, so a user fixes them top to bottom.
        self.problems = ([file.problem] if file.problem else []) + [text for _, text in sorted(found)]

    def pick(
        self,
        key: str,
        default: T,
        *,
        command_line: T | None = None,
        variable: str | None = None,
        from_env: Callable[[str], T] | None = None,
    ) -> Setting[T]:
        from_env_setting = self._from_environment(variable, from_env)
        if command_line is not None:
            return Setting(command_line, "command line")
        if from_env_setting is not None:
            return from_env_setting
        from_file: Setting[T] | None = self.from_file.get(key)
        return from_file if from_file is not None else Setting(default, "default")

    def _from_environment(self, variable: str | None, read: Callable[[str], T] | None) -> Setting[T] | None:
        if variable is None or read is None or not _env_text(self.environ.get(variable, "")):
            return None
        raw = self.environ[variable]
        try:
            return Setting(read(raw), "environment", variable=variable)
        except _Unfit:
            self.problems.append(
                f"{variable} in the environment must be {_ENV_RULES[variable]}, not {quote(raw)}; "
                "llmdeck ignores it, as Ollama does"
            )
            return None

    def _read(self, key: str, value: object, found: list[tuple[int, str]]) -> None:
        try:
            self.from_file[key] = self._from_file((key,), _READERS[key](value))
        except _Unfit:
            found.append(self._problem((key,), f"{key} must be {_RULES[key]}, not {_describe(value)}"))
        except HostError as error:
            found.append(self._problem((key,), f"{key}: {error}"))

    def _read_keymap(self, value: object, found: list[tuple[int, str]]) -> None:
        if not isinstance(value, dict):
            found.append(
                self._problem(("keymap",), f"keymap must be {_RULES['keymap']}, not {_describe(value)}")
            )
            return
        bindings: dict[str, str] = {}
        # `app.quit = "x"` without quotes is a dotted key, a table {"app": {"quit": "x"}} to TOML:
        # both spellings name the binding "app.quit". A stack, not recursion: tables may nest deep.
        pending: list[tuple[tuple[str, ...], object]] = [((key,), keys) for key, keys in value.items()]
        while pending:
            path, keys = pending.pop(0)
            where = ("keymap", *path)
            if isinstance(keys, dict):
                pending[:0] = [((*path, key), inner) for key, inner in keys.items()]
            elif isinstance(keys, str):
                binding = ".".join(path)
                bindings[binding] = keys
                self.binding_sources[f"keymap.{binding}"] = self._from_file(where, keys)
            else:
                found.append(
                    self._problem(
                        where, f"{dotted_key(where)} must be {_BINDING_RULE}, not {_describe(keys)}"
                    )
                )
        self.keymap = self._from_file(("keymap",), bindings)

    def _from_file(self, keys: tuple[str, ...], value: T) -> Setting[T]:
        return Setting(value, "config file", path=self.file.path, line=self.file.line_of(keys))

    def _problem(self, keys: tuple[str, ...], text: str) -> tuple[int, str]:
        line = self.file.line_of(keys)
        return (line or 0, f"{self.file.where(keys)}: {text}")


def _unknown(key: str, value: object) -> str:
    kind, shown = (
        ("table", f"[{dotted_key((key,))}]") if isinstance(value, dict) else ("key", dotted_key((key,)))
    )
    known = [*_READERS, "keymap"]
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]}?" if close else "llmdeck reads " + ", ".join(_READERS) + " and [keymap]"
    return f"unknown {kind} {shown}, ignored ({hint})"
