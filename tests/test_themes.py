from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from helpers import fast_settings, free_port

import llmdeck
from llmdeck.hardware import StaticProbe
from llmdeck.ollama_api import OllamaService
from llmdeck.ui.app import create_app
from llmdeck.ui.themes import DEFAULT_THEME, ThemeFileError, bundled_themes, load_theme

SOURCE_CHECKOUT = Path(llmdeck.__file__).parent.parent.name == "src"


@pytest.mark.skipif(SOURCE_CHECKOUT, reason="an editable install reads themes from the source tree")
def test_the_installed_package_carries_the_themes() -> None:
    assert (resources.files("llmdeck") / "themes" / f"{DEFAULT_THEME}.toml").is_file()


def test_bundled_themes_load_without_problems() -> None:
    themes, problems = bundled_themes()
    assert problems == []
    assert DEFAULT_THEME in {theme.name for theme in themes}


async def test_the_app_starts_in_llmdecks_own_theme(recorded_probe: StaticProbe) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    app = create_app(OllamaService(host), recorded_probe, fast_settings(host))
    async with app.run_test():
        assert app.theme == DEFAULT_THEME


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('name = "x"\nprimary = ', "x.toml"),
        ('name = "x"\nprimary = "#fff"\nshiny = true', "unknown keys shiny"),
        ('primary = "#fff"', "'name' and 'primary' are required"),
    ],
)
def test_a_broken_theme_file_is_named(text: str, problem: str) -> None:
    with pytest.raises(ThemeFileError, match=problem):
        load_theme("x.toml", text)
