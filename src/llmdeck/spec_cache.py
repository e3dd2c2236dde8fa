"""What the planner read of each model, kept between runs by the files it was read from.

The planner's facts come from `/api/show` with `verbose`, which carries the whole vocabulary
too: megabytes of JSON per model, fetched and parsed at every start before the first plan
showed. A blob's name is the hash of its content, so what one server version read of the same
blobs stays true; it is kept in `specs.json` in llmdeck's cache folder under those names and
that version, with a fingerprint of the code that read it (changed code reads them again). A
cache: ignored when unusable.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, get_args

import platformdirs

from llmdeck import __version__
from llmdeck.fit import facts, quant, synth
from llmdeck.fit import spec as spec_module
from llmdeck.fit.spec import ModelSpec, SpecSource
from llmdeck.private_files import write_private_json

SPEC_CACHE_FILE = "specs.json"
FORMAT = 1
# Models remembered (a few kB each); the ones read longest ago are dropped first.
SPECS_KEPT = 256
# A file larger than this is not llmdeck's: not read at all.
MAX_FILE_BYTES = 16 * 2**20


def spec_cache_path() -> Path:
    return platformdirs.user_cache_path("llmdeck") / SPEC_CACHE_FILE


def facts_key(blobs: Sequence[Path], server_version: str) -> str | None:
    """What a model's facts are kept under: the blobs its modelfile names (content hashes) and
    the server that described them (another version may describe the same files otherwise)."""
    names = [blob.name for blob in blobs if blob.name.startswith("sha256-")]
    return f"{'+'.join(names)}@{server_version}" if names else None


@functools.cache
def reader_fingerprint() -> str:
    """llmdeck's version and the code that turns a show answer into a spec: a change to either
    reads every model again (the version alone stays the same between development builds)."""
    digest = hashlib.sha256(f"{FORMAT}/{__version__}".encode())
    for module in (facts, quant, spec_module, synth):
        try:
            digest.update(Path(str(module.__file__)).read_bytes())
        except OSError:  # no source beside the code (a frozen build): the version has to do
            digest.update(module.__name__.encode())
    return digest.hexdigest()[:16]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
    """The specs kept at `path`, by `facts_key`; none when the file is unusable or was written by
    other code."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    written_by = (data.get("format"), data.get("reader")) if isinstance(data, dict) else None
    if written_by != (FORMAT, reader_fingerprint()):
        return {}
    entries = data.get("specs")
    if not isinstance(entries, dict):
        return {}
    specs: dict[str, ModelSpec] = {}
    for key, item in entries.items():
        spec = _spec(item)
        if spec is not None:
            specs[key] = spec
    return specs


def save_specs(path: Path, specs: Mapping[str, ModelSpec]) -> None:
    """Add `specs` (by `facts_key`) to those kept at `path`, written atomically; raises OSError."""
    with _saving:
        kept = {key: asdict(spec) for key, spec in load_specs(path).items() if key not in specs}
        kept.update((key, asdict(spec)) for key, spec in specs.items())
        latest = dict(list(kept.items())[-SPECS_KEPT:])  # insertion order: the latest read last
        write_private_json(path, {"format": FORMAT, "reader": reader_fingerprint(), "specs": latest})


def _spec(item: Any) -> ModelSpec | None:
    if not isinstance(item, dict) or set(item) != set(_FIELD_CHECKS):
        return None
    if not all(check(item[name]) for name, check in _FIELD_CHECKS.items()):
        return None
    values: dict[str, Any] = {
        name: tuple(value) if isinstance(value, list) else value for name, value in item.items()
    }
    if len(values["expert_layer_bytes"]) not in (0, values["block_count"]):
        return None  # the planner indexes it by layer
    try:
        return ModelSpec(**values)
    except ValueError:  # lists of the wrong length for the block count
        return None
