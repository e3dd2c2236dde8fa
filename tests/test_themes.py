from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from importlib import resources
from pathlib import Path

import pytest
import tomli_w
from helpers import fast_settings, free_port, terminal_output, wait_until, widget_text
from ollama_standin import OllamaStandIn
from textual.color import Color
from textual.theme import BUILTIN_THEMES, Theme

import llmdeck
from llmdeck.hardware import StaticProbe
from llmdeck.ollama_api import OllamaService
from llmdeck.ui import themes as themes_module
from llmdeck.ui.app import LlmdeckApp, create_app
from llmdeck.ui.hardware_pane import HardwarePane
from llmdeck.ui.models_pane import ModelsPane
from llmdeck.ui.themes import DEFAULT_THEME, ThemeFileError, bundled_themes, is_css_colour, load_theme

SOURCE_CHECKOUT = Path(llmdeck.__file__).parent.parent.name == "src"
ROOT = Path(__file__).resolve().parents[1]
THEME_FILES = sorted((ROOT / "themes").glob("*.toml"))
OWN_THEMES = ["llmdeck-16", "llmdeck-dark", "llmdeck-light"]
# Every colour a theme of ours sets itself: none is left to Textual's defaults, which change.
COLOUR_KEYS = {"primary", "secondary", "accent", "warning", "error", "success"}
SURFACE_KEYS = {"foreground", "background", "surface", "panel"}
SGR = re.compile(r"\x1b\[([0-9;]*)m")
SIXTEEN_COLOURS = {*range(30, 38), 39, *range(40, 48), 49, *range(90, 98), *range(100, 108)}


def offline_app(probe: StaticProbe) -> LlmdeckApp:
    host = f"http://127.0.0.1:{free_port()}"
    return create_app(OllamaService(host), probe, fast_settings(host))


def sgr_colours(output: str) -> list[str]:
    """Each colour set in terminal output: "rgb R G B", "256 N", or an SGR code such as "31"."""
    colours = []
    for sequence in SGR.findall(output):
        params = sequence.split(";")
        while params:
            code = params.pop(0)
            if code in ("38", "48") and params[:1] == ["2"]:
                colours.append("rgb " + " ".join(params[1:4]))
                del params[:4]
            elif code in ("38", "48") and params[:1] == ["5"]:
                colours.append(f"256 {params[1]}")
                del params[:2]
            elif code.isdigit() and (30 <= int(code) <= 49 or 90 <= int(code) <= 107):
                colours.append(code)
    return colours


def is_16_colour_code(colour: str) -> bool:
    """An SGR code for one of the 16 ANSI colours, or for the terminal's own (39, 49)."""
    return colour.isdigit() and int(colour) in SIXTEEN_COLOURS


async def main_screen_filled(app: LlmdeckApp) -> None:
    await wait_until(lambda: "RTX 4090" in widget_text(app.query_one(HardwarePane)))
    await wait_until(lambda: app.query_one(ModelsPane).row_count > 0)


# The files


@pytest.mark.skipif(SOURCE_CHECKOUT, reason="an editable install reads themes from the source tree")
def test_the_installed_package_carries_the_themes() -> None:
    assert (resources.files("llmdeck") / "themes" / f"{DEFAULT_THEME}.toml").is_file()


def test_bundled_themes_load_without_problems() -> None:
    themes, problems = bundled_themes()
    assert problems == []
    assert [theme.name for theme in themes] == OWN_THEMES


@pytest.mark.parametrize("path", THEME_FILES, ids=lambda path: path.stem)
def test_each_theme_file_sets_every_colour_and_is_named_as_its_file(path: Path) -> None:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data["name"] == path.stem
    assert isinstance(data["dark"], bool)
    assert set(data) >= COLOUR_KEYS | SURFACE_KEYS
    theme = load_theme(path.name, path.read_text(encoding="utf-8"))
    assert theme.name == path.stem


def contrast(one: Color, other: Color) -> float:
    def luminance(colour: Color) -> float:
        def channel(value: int) -> float:
            share = value / 255
            return share / 12.92 if share <= 0.03928 else ((share + 0.055) / 1.055) ** 2.4

        return 0.2126 * channel(colour.r) + 0.7152 * channel(colour.g) + 0.0722 * channel(colour.b)

    lighter, darker = sorted((luminance(one), luminance(other)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_the_light_theme_is_dark_text_on_light() -> None:
    theme = load_theme("llmdeck-light.toml", (ROOT / "themes" / "llmdeck-light.toml").read_text("utf-8"))
    assert theme.dark is False
    foreground, background = Color.parse(str(theme.foreground)), Color.parse(str(theme.background))
    assert foreground.brightness < 0.2 < 0.9 < background.brightness
    # WCAG's "AA" for body text: a contrast ratio of at least 4.5.
    for key in ("foreground", "primary", "secondary", "accent", "error", "success"):
        colour = Color.parse(getattr(theme, key))
        assert contrast(colour, background) >= 4.5, key


def test_the_16_colour_theme_uses_only_ansi_colours() -> None:
    data = tomllib.loads((ROOT / "themes" / "llmdeck-16.toml").read_text(encoding="utf-8"))
    assert data["ansi"] is True, "without `ansi = true` Textual converts ANSI colours to RGB"
    values = {key: value for key, value in data.items() if key not in {"name", "variables"}}
    values |= {f"variables.{key}": value for key, value in data["variables"].items()}
    colours = {key: value for key, value in values.items() if isinstance(value, str) and is_css_colour(value)}
    assert set(colours) >= COLOUR_KEYS | SURFACE_KEYS
    not_ansi = {key: value for key, value in colours.items() if not value.startswith("ansi_")}
    assert not_ansi == {}
    for value in colours.values():
        assert Color.parse(value.split()[0]).ansi is not None, value


@pytest.mark.parametrize("theme", list(BUILTIN_THEMES.values()), ids=lambda theme: theme.name)
def test_every_textual_theme_written_as_a_file_loads_unchanged(theme: Theme) -> None:
    # The checks below must not refuse what Textual itself accepts.
    data = {key: value for key, value in dataclasses.asdict(theme).items() if value is not None}
    assert load_theme("textual.toml", tomli_w.dumps(data)) == theme


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('name = "x"\nprimary = ', "x.toml"),
        ('name = "x"\nprimary = "#fff"\nshiny = true', "unknown keys shiny"),
        ('primary = "#fff"', "'name' and 'primary' are required"),
        ('name = "x"\nprimary = "blurple"', "x.toml: 'primary': failed to parse 'blurple'"),
        ('name = "x"\nprimary = "#fff"\nwarning = 3', "'warning' must be a string"),
        ('name = "x"\nprimary = "#fff"\ndark = "no"', "'dark' must be true or false"),
        ('name = "x"\nprimary = "#fff"\nvariables = 3', "'variables' must be a table of strings"),
        ('name = "x"\nprimary = "#fff"\n[variables]\nborder = "#zzz"', "border = '#zzz' is not valid CSS"),
        ('name = "x"\nprimary = "#fff"\n[variables]\nborder = "reds"', "border = 'reds' is not a colour"),
    ],
)
def test_a_broken_theme_file_is_named(text: str, problem: str) -> None:
    with pytest.raises(ThemeFileError, match=re.escape(problem)):
        load_theme("x.toml", text)


def test_an_installed_wheel_carries_and_loads_the_themes(tmp_path: Path) -> None:
    # The wheel as pip builds it (hatchling, in an isolated build environment), unpacked where
    # Python imports llmdeck from it: the themes must come from inside the package, not from the
    # checkout's top-level folder.
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("llmdeck-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        shipped = sorted(name for name in archive.namelist() if name.startswith("llmdeck/themes/"))
        archive.extractall(site)
    assert shipped == [f"llmdeck/themes/{path.name}" for path in THEME_FILES]
    script = (
        "import json, llmdeck\n"
        "from llmdeck.ui.themes import bundled_themes, bundled_themes_dir\n"
        "themes, problems = bundled_themes()\n"
        "print(json.dumps({'package': llmdeck.__file__, 'folder': str(bundled_themes_dir()),\n"
        "    'names': [theme.name for theme in themes], 'problems': problems}))\n"
    )
    paths = [str(site), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert Path(found["package"]).is_relative_to(site)
    assert Path(found["folder"]) == site / "llmdeck" / "themes"
    assert found["names"] == OWN_THEMES
    assert found["problems"] == []


# In the app


async def test_the_app_starts_in_llmdecks_own_theme(recorded_probe: StaticProbe) -> None:
    app = offline_app(recorded_probe)
    async with app.run_test():
        assert app.theme == DEFAULT_THEME


async def test_each_own_theme_is_registered_and_can_be_switched_to(recorded_probe: StaticProbe) -> None:
    app = offline_app(recorded_probe)
    async with app.run_test() as pilot:
        # Beside Textual's own, not instead of them.
        assert set(OWN_THEMES) | {"textual-dark", "textual-light"} <= set(app.available_themes)
        for name in [*OWN_THEMES, DEFAULT_THEME]:
            app.theme = name
            await pilot.pause()
            theme = app.current_theme
            assert theme.name == name
            variables = app.get_css_variables()
            assert variables["primary"] == Color.parse(theme.primary).hex
            assert app.screen.styles.background.hex == Color.parse(str(theme.background)).hex
            # Only the 16-colour theme writes ANSI colour codes; the others are RGB.
            assert app.native_ansi_color is theme.ansi
            assert app.screen.has_pseudo_class("light") is not theme.dark


async def test_a_broken_theme_file_is_named_and_the_app_starts_without_it(
    recorded_probe: StaticProbe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path in THEME_FILES:
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "zz-broken.toml").write_text('name = "zz-broken"\nprimary = "blurple"\n', encoding="utf-8")
    monkeypatch.setattr(themes_module, "bundled_themes_dir", lambda: tmp_path)
    app = offline_app(recorded_probe)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == DEFAULT_THEME
        assert "zz-broken" not in app.available_themes
        assert set(OWN_THEMES) <= set(app.available_themes)
        messages = [str(note.message) for note in app._notifications]
        assert any(message.startswith("zz-broken.toml: 'primary'") for message in messages), messages


async def test_the_16_colour_theme_writes_only_16_colour_codes(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = create_app(OllamaService(standin.url), recorded_probe, fast_settings(standin.url))
    async with app.run_test(size=(120, 40)) as pilot:
        app.theme = "llmdeck-16"
        await main_screen_filled(app)
        await pilot.pause()
        colours = sgr_colours(terminal_output(app))
        assert len(set(colours)) > 4, "the screen shows colours"
        assert [colour for colour in colours if not is_16_colour_code(colour)] == []


@pytest.mark.parametrize("no_color", ["1", None, ""])
async def test_no_color_leaves_only_greys(
    no_color: str | None, standin: OllamaStandIn, recorded_probe: StaticProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Textual reads NO_COLOR (https://no-color.org) when the app is built, and then draws every
    # colour as its grey: escapes remain, but they carry brightness only, no hue. An empty one
    # counts as not set (the convention's words), though Textual alone counts it.
    if no_color is not None:
        monkeypatch.setenv("NO_COLOR", no_color)
    app = create_app(OllamaService(standin.url), recorded_probe, fast_settings(standin.url))
    colours: dict[str, list[str]] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await main_screen_filled(app)
        for name in OWN_THEMES:
            app.theme = name
            await pilot.pause()
            colours[name] = sgr_colours(terminal_output(app))

    def hued(colour: str) -> bool:
        if colour.startswith("rgb "):
            return len(set(colour.split()[1:])) > 1
        return colour not in {"39", "49"}

    for name in OWN_THEMES:
        assert colours[name], f"{name}: the screen sets colours"
        if not no_color:
            assert any(map(hued, colours[name])), name
            theme = app.get_theme(name)
            assert theme is not None
            if not theme.ansi:  # the screen was read after the switch: its background is the theme's
                background = Color.parse(str(theme.background))
                assert f"rgb {background.r} {background.g} {background.b}" in colours[name], name
        else:
            assert [colour for colour in colours[name] if hued(colour)] == [], name


def test_a_colour_is_told_from_other_values_as_textuals_own_parser_tells_them() -> None:
    # Names are looked up without Textual's parser (which also looks for a close name to
    # suggest, ~1 ms a word): the answer must still be the parser's, for every value a theme
    # may hold, Textual's own defaults included.
    from textual._color_constants import COLOR_NAME_TO_RGB
    from textual.color import ColorParseError
    from textual.design import ColorSystem

    from llmdeck.ui.themes import is_css_colour

    defaults = [
        value
        for system in (ColorSystem(primary="#000000"), ColorSystem(primary="ansi_blue", ansi=True))
        for value in system.generate().values()
    ]
    words = ["bold", "none", "initial", "ansi_bogus", "Red", "#zzz", "rgb(1,2)", "hsl(1,2%,3%)", "redd"]
    for value in [*COLOR_NAME_TO_RGB, *defaults, *words]:
        base = re.sub(r"\s+\d+%$", "", value.strip())  # CSS's "auto 87%": a colour, an alpha
        try:
            Color.parse(base)
        except ColorParseError:
            parsed = base == "auto"
        else:
            parsed = True
        assert is_css_colour(value) == parsed, value
