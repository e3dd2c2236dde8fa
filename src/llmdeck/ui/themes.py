"""llmdeck's own themes: data files in `themes/`, shipped inside the package."""

from __future__ import annotations

import dataclasses
import functools
import re
import tomllib
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

from textual._color_constants import COLOR_NAME_TO_RGB  # the names Color.parse knows
from textual.color import Color, ColorParseError
from textual.css.tokenize import tokenize_values
from textual.css.tokenizer import TokenError
from textual.design import ColorSystem
from textual.theme import Theme

DEFAULT_THEME = "llmdeck-dark"
_THEME_FIELDS = {field.name for field in dataclasses.fields(Theme)}
_FLAGS = {"dark", "ansi"}
_NUMBERS = {"luminosity_spread", "text_alpha"}
_ALPHA = re.compile(r"\s+\d+(?:\.\d+)?%$")


class ThemeFileError(ValueError):
    pass


def bundled_themes_dir() -> Traversable:
    installed = resources.files("llmdeck") / "themes"
    if installed.is_dir():
        return installed
    # An editable install runs from the source tree, where the themes sit at the top level.
    checkout = Path(str(resources.files("llmdeck"))).parents[1] / "themes"
    return checkout if checkout.is_dir() else installed


def is_css_colour(value: str) -> bool:
    """A colour as Textual's CSS writes one: a name, hex, ansi_* or "auto", with an optional "NN%"."""
    base = _ALPHA.sub("", value.strip())
    if base in ("auto", "ansi_default"):
        return True
    if not base.startswith(("#", "rgb", "hsl")):
        # A name, as Textual's parser reads one; it would also look for a close name to suggest
        # (difflib, ~1 ms a word; the words that are not colours cost ~13 ms at every start).
        return base in COLOR_NAME_TO_RGB
    try:
        Color.parse(base)
    except ColorParseError:
        return False
    return True


@functools.cache
def _colour_variables() -> frozenset[str]:
    # The variables that hold colours: those Textual's own defaults give colours (in both its
    # truecolor and its ANSI themes; "link-background" is "initial" in one).
    defaults: dict[str, list[str]] = {}
    for system in (ColorSystem(primary="#000000"), ColorSystem(primary="ansi_blue", ansi=True)):
        for name, value in system.generate().items():
            defaults.setdefault(name, []).append(value)
    return frozenset(name for name, values in defaults.items() if all(map(is_css_colour, values)))


def _field_problem(key: str, value: Any) -> str | None:
    if key in _FLAGS:
        return None if isinstance(value, bool) else f"'{key}' must be true or false"
    if key in _NUMBERS:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"'{key}' must be a number"
    if key == "variables":
        if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
            return "'variables' must be a table of strings"
        problems = [problem for name, item in value.items() if (problem := _variable_problem(name, item))]
        return "; ".join(problems) or None
    if not isinstance(value, str):
        return f"'{key}' must be a string"
    if key == "name":
        return None
    # Textual parses a theme's colours only when it switches to the theme, and a bad one then stops
    # the app: here it is reported with the file's name and the app starts without the theme.
    try:
        Color.parse(value)
    except ColorParseError as error:
        return f"'{key}': {error}"
    return None


def _variable_problem(key: str, value: str) -> str | None:
    try:
        # Textual reads every variable with its CSS tokenizer when the theme is applied.
        tokenize_values({key: value})
    except TokenError:
        return f"variable {key} = {value!r} is not valid CSS"
    if key in _colour_variables() and not is_css_colour(value):
        return f"variable {key} = {value!r} is not a colour"
    return None


def load_theme(name: str, text: str) -> Theme:
    """The theme in a file's text; `name` (the file's) is in every problem reported."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ThemeFileError(f"{name}: {error}") from error
    unknown = sorted(set(data) - _THEME_FIELDS)
    if unknown:
        raise ThemeFileError(f"{name}: unknown keys {', '.join(unknown)}")
    if not isinstance(data.get("name"), str) or not isinstance(data.get("primary"), str):
        raise ThemeFileError(f"{name}: 'name' and 'primary' are required strings")
    problems = [problem for key, value in data.items() if (problem := _field_problem(key, value))]
    if problems:
        raise ThemeFileError(f"{name}: {'; '.join(problems)}")
    return Theme(**data)


def bundled_themes() -> tuple[list[Theme], list[str]]:
    """Every bundled theme that loads, and a message for each that does not."""
    themes: list[Theme] = []
    problems: list[str] = []
    folder = bundled_themes_dir()
    if not folder.is_dir():
        return themes, [f"llmdeck's themes folder is missing from the installation ({folder})"]
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if not entry.name.endswith(".toml"):
            continue
        try:
            themes.append(load_theme(entry.name, entry.read_text(encoding="utf-8")))
        except ThemeFileError as error:
            problems.append(str(error))
    return themes, problems
