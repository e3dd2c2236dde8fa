"""The model list each server last gave, kept between runs so the next start shows it at once.

Asking Ollama needs the official client, and importing it is half of llmdeck's start-up: the
list a server gave last time is on screen before that, marked as such, and replaced by the
server's own as soon as it answers. It is a cache (`models.json` in the user's cache folder):
llmdeck's alone, rewritten each time a server's list is read anew, ignored when unreadable.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platformdirs

from llmdeck.ollama_api import InstalledModel
from llmdeck.private_files import write_private_json

CACHE_FILE = "models.json"
FORMAT = 1
# Servers remembered; the ones least recently seen are dropped first.
HOSTS_KEPT = 16
_FIELDS = ("name", "size_bytes", "parameter_size", "quantization", "family", "digest")


def model_cache_path() -> Path:
    return platformdirs.user_cache_path("llmdeck") / CACHE_FILE


@dataclass(frozen=True, slots=True)
class SeenList:
    """A server's model list as it was when `seen_at` (UTC)."""

    models: list[InstalledModel]
    seen_at: datetime


def load_seen(path: Path, host: str) -> SeenList | None:
    """What `host` last listed, or None: never seen, or the file unusable (not an error: a cache)."""
    entry = _read(path).get(host)
    if not isinstance(entry, dict):
        return None
    try:
        seen_at = datetime.fromisoformat(entry["seen_at"])
        models = [_model(item) for item in entry["models"]]
    except (KeyError, TypeError, ValueError):
        return None
    if seen_at.tzinfo is None:
        return None
    return SeenList(models, seen_at)


# Two lists in quick succession (a pull, then a removal) are saved one after the other, so the
# later one is what the file keeps.
_saving = threading.Lock()


def save_seen(path: Path, host: str, models: list[InstalledModel], now: datetime | None = None) -> None:
    """Record `host`'s list, written atomically; raises OSError when it cannot be written."""
    with _saving:
        _save(path, host, models, now)


def _save(path: Path, host: str, models: list[InstalledModel], now: datetime | None) -> None:
    hosts = _read(path)
    hosts.pop(host, None)
    hosts[host] = {
        "seen_at": (now or datetime.now(UTC)).isoformat(),
        "models": [asdict(model) for model in models],
    }
    kept = dict(list(hosts.items())[-HOSTS_KEPT:])  # insertion order: the latest seen last
    write_private_json(path, {"format": FORMAT, "hosts": kept})


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    hosts = data.get("hosts") if isinstance(data, dict) and data.get("format") == FORMAT else None
    return hosts if isinstance(hosts, dict) else {}


def _model(item: Any) -> InstalledModel:
    if not isinstance(item, dict):
        raise TypeError("not a model")
    values = [item[field] for field in _FIELDS]
    if not isinstance(values[1], int) or not all(isinstance(value, str) for value in values[:1] + values[2:]):
        raise TypeError("a model field of the wrong type")
    return InstalledModel(*values)
