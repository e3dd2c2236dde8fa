"""What the planner read of each model, kept between runs by the model's digest.

The planner's facts come from `/api/show` with `verbose`, which carries the whole vocabulary
too: megabytes of JSON per model, fetched and parsed at every start before the first plan
showed. A digest names a model's files exactly, so what was read of it once stays true; it is
kept in `specs.json` in llmdeck's cache folder with the version of llmdeck that read it (another
version may read the facts otherwise, and reads them again). A cache: ignored when unusable.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, get_args

import platformdirs

from llmdeck import __version__
from llmdeck.fit.spec import ModelSpec, SpecSource
from llmdeck.private_files import write_private_json

SPEC_CACHE_FILE = "specs.json"
FORMAT = 1
# Models remembered (a few kB each); the ones read longest ago are dropped first.
SPECS_KEPT = 256


def spec_cache_path() -> Path:
    return platformdirs.user_cache_path("llmdeck") / SPEC_CACHE_FILE


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# How each field of ModelSpec is checked, by its annotation: the file is read back into the planner.
_CHECKS: dict[str, Callable[[Any], bool]] = {
    "str": lambda value: isinstance(value, str),
    "int": _is_int,
    "bool": lambda value: isinstance(value, bool),
    "int | None": lambda value: value is None or _is_int(value),
    "tuple[int, ...]": lambda value: isinstance(value, list) and all(_is_int(item) for item in value),
    "SpecSource": lambda value: value in get_args(SpecSource),
}
_FIELD_CHECKS = {field.name: _CHECKS[str(field.type)] for field in fields(ModelSpec)}

_saving = threading.Lock()


def load_specs(path: Path) -> dict[str, ModelSpec]:
    """The specs kept at `path`, by digest; none when the file is unusable or another llmdeck's."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("llmdeck") != __version__:
        return {}
    entries = data.get("specs")
    if not isinstance(entries, dict):
        return {}
    specs: dict[str, ModelSpec] = {}
    for digest, item in entries.items():
        spec = _spec(item)
        if spec is not None:
            specs[digest] = spec
    return specs


def save_specs(path: Path, specs: Mapping[str, ModelSpec]) -> None:
    """Add `specs` (by digest) to those kept at `path`, written atomically; raises OSError."""
    with _saving:
        kept = {digest: asdict(spec) for digest, spec in load_specs(path).items() if digest not in specs}
        kept.update((digest, asdict(spec)) for digest, spec in specs.items())
        latest = dict(list(kept.items())[-SPECS_KEPT:])  # insertion order: the latest read last
        write_private_json(path, {"format": FORMAT, "llmdeck": __version__, "specs": latest})


def _spec(item: Any) -> ModelSpec | None:
    if not isinstance(item, dict) or set(item) != set(_FIELD_CHECKS):
        return None
    if not all(check(item[name]) for name, check in _FIELD_CHECKS.items()):
        return None
    values: dict[str, Any] = {
        name: tuple(value) if isinstance(value, list) else value for name, value in item.items()
    }
    try:
        return ModelSpec(**values)
    except ValueError:  # lists of the wrong length for the block count
        return None
