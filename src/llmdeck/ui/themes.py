"""llmdeck's own themes: data files in `themes/`, shipped inside the package."""

from __future__ import annotations

import dataclasses
import tomllib
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from textual.theme import Theme

DEFAULT_THEME = "llmdeck-dark"
_THEME_FIELDS = {field.name for field in dataclasses.fields(Theme)}


class ThemeFileError(ValueError):
    pass


def bundled_themes_dir() -> Traversable:
    installed = resources.files("llmdeck") / "themes"
    if installed.is_dir():
        return installed
    # An editable install runs from the source tree, where the themes sit at the top level.
    checkout = Path(str(resources.files("llmdeck"))).parents[1] / "themes"
    return checkout if checkout.is_dir() else installed


def load_theme(name: str, text: str) -> Theme:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ThemeFileError(f"{name}: {error}") from error
    unknown = sorted(set(data) - _THEME_FIELDS)
    if unknown:
        raise ThemeFileError(f"{name}: unknown keys {', '.join(unknown)}")
    if not isinstance(data.get("name"), str) or not isinstance(data.get("primary"), str):
        raise ThemeFileError(f"{name}: 'name' and 'primary' are required strings")
    try:
        return Theme(**data)
    except (TypeError, ValueError) as error:
        raise ThemeFileError(f"{name}: {error}") from error


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
