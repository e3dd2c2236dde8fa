"""llmdeck's memory between runs: `state.toml` in the user's state directory.

What is in it is llmdeck's own (the last model, the theme, a context per model, speed calibrations),
not settings a user is expected to write. It is still a TOML file a user may open and edit, so a
file llmdeck cannot use is reported once, left alone while llmdeck runs, and moved aside (never
overwritten) when llmdeck next saves.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as time_of_day
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from llmdeck.private_files import make_private_folders

if sys.platform != "win32":
    import fcntl

APP_NAME = "llmdeck"
STATE_FILE = "state.toml"
# A running mean over at most this many replies: a new driver, a changed model or a busier
# machine shows within a few replies, yet one odd reply moves the figure by an eighth at most.
CALIBRATION_WINDOW = 8
# One reply's ratio is clamped to this range, so a stalled or misreported stream cannot wreck the
# calibration built from the replies before it.
RATIO_MIN = 0.05
RATIO_MAX = 20.0

_KNOWN_KEYS = frozenset({"last_model", "theme", "contexts", "calibrations"})
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class StateError(OSError):
    """`state.toml` could not be written; the message names the file and the reason."""


class _Unusable(Exception):
    """The state file exists but cannot be used; the message says why (without the path)."""


def state_path() -> Path:
    return platformdirs.user_state_path(APP_NAME) / STATE_FILE


@dataclass(frozen=True, slots=True)
class Calibration:
    """How fast a model really runs on a server: measured tokens/s ÷ llmdeck's estimate."""

    ratio: float
    samples: int


@dataclass(slots=True)
class State:
    last_model: str | None = None
    theme: str | None = None
    contexts: dict[str, int] = field(default_factory=dict)
    # Ollama host URL -> model name -> calibration: the same model runs at another speed on
    # another machine.
    calibrations: dict[str, dict[str, Calibration]] = field(default_factory=dict)
    # Top-level keys this llmdeck does not know, from a newer one: written back as they were read.
    extra: dict[str, Any] = field(default_factory=dict)

    def calibration(self, host: str, model: str) -> Calibration | None:
        return self.calibrations.get(host, {}).get(model)

    def record_calibration(
        self, host: str, model: str, measured_tps: float, estimated_tps: float
    ) -> Calibration | None:
        """Fold one reply's speed into the model's calibration; None (and no change) if unusable.

        Whether a reply was long enough to judge is the caller's decision; this only refuses
        figures that are not speeds at all.
        """
        if not all(math.isfinite(value) and value > 0 for value in (measured_tps, estimated_tps)):
            return None
        ratio = min(max(measured_tps / estimated_tps, RATIO_MIN), RATIO_MAX)
        old = self.calibration(host, model)
        if old is None:
            new = Calibration(ratio, 1)
        else:
            weight = min(old.samples + 1, CALIBRATION_WINDOW)
            new = Calibration(old.ratio + (ratio - old.ratio) / weight, old.samples + 1)
        self.calibrations.setdefault(host, {})[model] = new
        return new


def load_state(path: Path) -> tuple[State, str | None]:
    """The state saved at `path`, and a message for the user if the file cannot be used.

    A missing file is a first run, not a problem. Any other trouble gives an empty state and the
    file is left exactly as it is.
    """
    try:
        return _read(path), None
    except FileNotFoundError:
        return State(), None
    except _Unusable as problem:
        return State(), (
            f"cannot use llmdeck's saved state {path}: {problem}. llmdeck starts without it and "
            "moves the file aside (it is not deleted) when it next saves"
        )


def save_state(path: Path, state: State) -> None:
    """Write `state` to `path` so that the file is always either the old state or the new one.

    Raises StateError naming the file and the reason; the previous file is then unchanged.
    """
    with _reporting_failure(path), _locked(path) as locked:
        _write(path, state, locked)


def update_state(path: Path, change: Callable[[State], object]) -> State:
    """Read the file afresh, apply `change`, save, and return the new state.

    Another llmdeck window may have saved since this one loaded; starting from the file keeps
    its changes (its calibrations, its last model) instead of overwriting them.
    """
    with _reporting_failure(path), _locked(path) as locked:
        try:
            state = _read(path)
        except (FileNotFoundError, _Unusable):
            state = State()
        change(state)
        _write(path, state, locked)
    return state


def _read(path: Path) -> State:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as error:
        raise _Unusable(_reason(error, path)) from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise _Unusable(f"not UTF-8 text (line {line})") from error
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        # tomllib's message ends with the line and column, e.g. "(at line 3, column 9)".
        raise _Unusable(f"not valid TOML: {error}") from error
    except RecursionError as error:
        # tomllib parses nested arrays recursively: a few hundred `[` exhaust the stack.
        raise _Unusable("arrays or tables nested too deeply") from error
    return _from_toml(data)


def _from_toml(data: dict[str, Any]) -> State:
    state = State()
    for key, value in data.items():
        if key == "last_model":
            state.last_model = _string(value, key)
        elif key == "theme":
            state.theme = _string(value, key)
        elif key == "contexts":
            for model, length in _table(value, key).items():
                if not _is_int(length) or length <= 0:
                    raise _Unusable(f"{_key(key, model)} must be a positive integer, not {_describe(length)}")
                state.contexts[model] = length
        elif key == "calibrations":
            for host, models in _table(value, key).items():
                for model, entry in _table(models, _key(key, host)).items():
                    state.calibrations.setdefault(host, {})[model] = _calibration(entry, key, host, model)
        else:
            state.extra[key] = value
    return state


def _calibration(entry: object, *keys: str) -> Calibration:
    # Other keys in an entry are ignored and not written back: the entry is rewritten whole
    # whenever a reply updates it, and anything kept beside the new ratio would no longer match.
    table = _table(entry, _key(*keys))
    for name in ("ratio", "samples"):
        if name not in table:
            raise _Unusable(f"{_key(*keys, name)} is missing")
    ratio, samples = table["ratio"], table["samples"]
    if not (_is_int(ratio) or isinstance(ratio, float)) or not (math.isfinite(ratio) and ratio > 0):
        raise _Unusable(f"{_key(*keys, 'ratio')} must be a positive number, not {_describe(ratio)}")
    if not _is_int(samples) or samples < 1:
        raise _Unusable(f"{_key(*keys, 'samples')} must be a positive integer, not {_describe(samples)}")
    return Calibration(float(ratio), samples)


def _string(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise _Unusable(f"{key} must be a string, not {_describe(value)}")
    return value


def _table(value: object, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Unusable(f"{key} must be a table, not {_describe(value)}")
    return value


def _is_int(value: object) -> bool:
    # TOML's true is not a number, though Python's bool is an int.
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime | date | time_of_day):
        return "a date or time"
    return type(value).__name__


def _key(*parts: str) -> str:
    """A dotted key as TOML spells it, so the user can find it in the file."""
    return ".".join(
        part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False) for part in parts
    )


def _to_toml(state: State) -> dict[str, Any]:
    document: dict[str, Any] = {}
    if state.last_model is not None:
        document["last_model"] = state.last_model
    if state.theme is not None:
        document["theme"] = state.theme
    if state.contexts:
        document["contexts"] = dict(state.contexts)
    calibrations = {
        host: {model: {"ratio": entry.ratio, "samples": entry.samples} for model, entry in models.items()}
        for host, models in state.calibrations.items()
        if models
    }
    if calibrations:
        document["calibrations"] = calibrations
    document.update((key, value) for key, value in state.extra.items() if key not in _KNOWN_KEYS)
    return document


def _write(path: Path, state: State, locked: bool) -> None:
    data = tomli_w.dumps(_to_toml(state)).encode("utf-8")
    if locked:
        _remove_stale_temp_files(path)
    # mkstemp creates the file with mode 0o600 and O_EXCL: the state is the user's alone.
    descriptor, temp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        _move_aside_if_unusable(path)
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    _sync_folder(path.parent)


def _move_aside_if_unusable(path: Path) -> None:
    """Keep a file llmdeck cannot read (a hand edit gone wrong) instead of overwriting it."""
    try:
        _read(path)
    except FileNotFoundError:
        return
    except _Unusable:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = path.with_name(f"{path.name}.broken-{stamp}")
        number = 1
        while os.path.lexists(aside):
            aside = path.with_name(f"{path.name}.broken-{stamp}-{number}")
            number += 1
        os.rename(path, aside)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _remove_stale_temp_files(path: Path) -> None:
    # Only called with the lock held: every writer holds it while its temp file exists, so any
    # temp file seen now was left by a writer that was killed.
    prefix = _temp_prefix(path)
    for name in os.listdir(path.parent):
        if name.startswith(prefix) and name.endswith(".tmp"):
            with suppress(OSError):
                os.unlink(path.parent / name)


def _sync_folder(folder: Path) -> None:
    # Makes the rename itself survive a power cut. Not every system or file system can sync a
    # folder, and the new file is in place already, so a failure here is not a failed save.
    if sys.platform == "win32":
        return
    with suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@contextmanager
def _locked(path: Path) -> Iterator[bool]:
    """One writer at a time across processes (two llmdeck windows); yields whether it is held.

    Without the lock the file still stays whole; only two windows saving at the same moment could
    lose one's change. So a lock that cannot be taken (Windows, a file system without locks) does
    not stop the save, and a folder that cannot be written is reported by the write itself.
    """
    make_private_folders(path.parent)
    if sys.platform == "win32":
        yield False
        return
    try:
        descriptor = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        descriptor = None
    try:
        held = False
        if descriptor is not None:
            with suppress(OSError):
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                held = True
        yield held
    finally:
        if descriptor is not None:
            os.close(descriptor)  # closing releases the lock


@contextmanager
def _reporting_failure(path: Path) -> Iterator[None]:
    try:
        yield
    except StateError:
        raise
    except OSError as error:
        raise StateError(f"cannot save llmdeck state to {path}: {_reason(error, path)}") from error


def _reason(error: OSError, path: Path) -> str:
    reason = error.strerror or (os.strerror(error.errno) if error.errno else str(error))
    # Name another file involved (a parent folder that cannot be created), not our temp file.
    if error.filename is not None:
        other = Path(os.fsdecode(error.filename))
        if other != path and not other.name.startswith(_temp_prefix(path)):
            reason = f"{reason}: {other}"
    return reason
