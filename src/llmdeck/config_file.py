"""`config.toml`: the settings file the user writes. llmdeck reads it and never writes it.

This module only reads the file and says where things are in it; what the keys mean, and what
wins over the file, is `config`'s job. A file that cannot be used as a whole (unreadable, not
TOML) is one message and no values: llmdeck must start whatever the user typed.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from llmdeck.sanitize import inert
from llmdeck.state import APP_NAME

CONFIG_FILE = "config.toml"

# TOML keys as they can start a line: bare, "basic" or 'literal', dotted with optional spaces.
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED_KEY = rf"{_KEY_PART}(?:[ \t]*\.[ \t]*{_KEY_PART})*"
_TABLE_HEADER = re.compile(rf"[ \t]*\[\[?[ \t]*({_DOTTED_KEY})[ \t]*\]\]?[ \t]*(?:#.*)?$")
_ASSIGNMENT = re.compile(rf"[ \t]*({_DOTTED_KEY})[ \t]*=")
_PARTS = re.compile(_KEY_PART)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# tomllib ends its messages with the position: "Invalid value (at line 3, column 9)".
_POSITION = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$", re.DOTALL)


def default_config_path() -> Path:
    return platformdirs.user_config_path(APP_NAME) / CONFIG_FILE


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """What the file holds, and on which line each key is, so a message can point at it."""

    path: Path
    data: Mapping[str, Any] = field(default_factory=dict)
    # Why the file as a whole is not used (then `data` is empty); None when it is, or is absent.
    problem: str | None = None
    exists: bool = False
    lines: Mapping[tuple[str, ...], int] = field(default_factory=dict)

    def line_of(self, keys: Sequence[str]) -> int | None:
        """The line of a key path, or of the nearest table or inline table that holds it."""
        for end in range(len(keys), 0, -1):
            line = self.lines.get(tuple(keys[:end]))
            if line is not None:
                return line
        return None

    def where(self, keys: Sequence[str]) -> str:
        line = self.line_of(keys)
        return f"{self.path}, line {line}" if line is not None else str(self.path)


def read_config(path: Path, *, given: bool = False) -> ConfigFile:
    """Read `path` without changing it. `given`: the user named it, so a missing file is a problem."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if not given:
            return ConfigFile(path)
        return ConfigFile(path, problem=f"{path}: no such config file; llmdeck uses the defaults")
    except OSError as error:
        reason = error.strerror or str(error)
        return ConfigFile(
            path, problem=f"{path}: cannot read the config file ({reason}); llmdeck uses the defaults"
        )
    try:
        # Notepad and some editors start UTF-8 files with a byte order mark; TOML does not allow
        # one, but refusing a whole file for an invisible character helps nobody.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        return ConfigFile(
            path, exists=True, problem=f"{path}, line {line}: not UTF-8 text; llmdeck ignores the whole file"
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return ConfigFile(path, exists=True, problem=_syntax_problem(path, str(error)))
    except RecursionError:
        return ConfigFile(
            path,
            exists=True,
            problem=f"{path}: arrays or tables nested too deeply; llmdeck ignores the whole file",
        )
    return ConfigFile(path, data, exists=True, lines=key_lines(text))


def _syntax_problem(path: Path, message: str) -> str:
    found = _POSITION.match(message)
    if found is None:
        return f"{path}: not valid TOML ({message}); llmdeck ignores the whole file"
    where = f"{path}, line {found['line']}, column {found['column']}"
    return f"{where}: not valid TOML ({found['what']}); llmdeck ignores the whole file"


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Key path -> the first line (from 1) that defines it, found by reading the lines.

    tomllib reports no positions for keys that parse. A table header defines its path; `a.b = 1`
    under `[t]` defines ("t", "a", "b") and the tables ("t", "a") on the way. Lines inside a
    multi-line string are skipped, so text that looks like a key there is not taken for one.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    open_quote: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if open_quote is not None:
            if line.count(open_quote) % 2:
                open_quote = None
            continue
        header = _TABLE_HEADER.match(line)
        assignment = None if header else _ASSIGNMENT.match(line)
        if header:
            table = _key_parts(header[1])
            _define(lines, table, number)
        elif assignment:
            _define(lines, table + _key_parts(assignment[1]), number)
        for quote in ('"""', "'''"):
            if line.count(quote) % 2:
                open_quote = quote
                break
    return lines


def _define(lines: dict[tuple[str, ...], int], keys: tuple[str, ...], number: int) -> None:
    for end in range(1, len(keys) + 1):
        lines.setdefault(keys[:end], number)


def _key_parts(dotted: str) -> tuple[str, ...]:
    return tuple(_unquote(part) for part in _PARTS.findall(dotted))


def _unquote(part: str) -> str:
    if part.startswith("'"):
        return part[1:-1]
    if part.startswith('"'):
        try:
            value = json.loads(part)
        except ValueError:
            # A TOML escape JSON does not have (\U0001F600, \e): close enough to find the line.
            return part[1:-1]
        return value if isinstance(value, str) else part[1:-1]
    return part


def dotted_key(keys: Sequence[str]) -> str:
    """A key path as TOML spells it (`keymap."app.quit"`), so the user can find it in the file."""
    return ".".join(key if _BARE_KEY.fullmatch(key) else quote(key) for key in keys)


def quote(text: str, limit: int = 60) -> str:
    """File text inside a message: quoted, cut short, and unable to act on the terminal."""
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    # JSON escapes the C0 controls (ESC among them); inert drops DEL and the C1 controls.
    return inert(json.dumps(shown, ensure_ascii=False))
