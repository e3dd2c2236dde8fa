"""Config, keymap, help, themes and remembered choices, as a user meets them in the TUI."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from helpers import fast_settings, wait_until
from ollama_standin import OllamaStandIn
from textual.widgets import DataTable

from llmdeck.config import Settings, load_settings
from llmdeck.hardware import StaticProbe
from llmdeck.ollama_api import OllamaService
from llmdeck.state import State, load_state, save_state
from llmdeck.ui.app import LlmdeckApp, create_app
from llmdeck.ui.chat_pane import ChatPane
from llmdeck.ui.help_screen import HelpScreen
from llmdeck.ui.models_pane import ModelsPane

SIZE = (120, 40)


def settings_from(config: Path, standin: OllamaStandIn) -> Settings:
    loaded = load_settings(host=standin.url, refresh_s=None, config_path=config, environ={})
    fast = fast_settings(standin.url)
    return replace(
        loaded,
        reconnect_initial_s=fast.reconnect_initial_s,
        reconnect_max_s=fast.reconnect_max_s,
        heartbeat_s=fast.heartbeat_s,
    )


def build(standin: OllamaStandIn, probe: StaticProbe, settings: Settings, state_file: Path) -> LlmdeckApp:
    return create_app(OllamaService(standin.url), probe, settings, state_file=state_file)


async def planned(app: LlmdeckApp) -> ModelsPane:
    models = app.query_one(ModelsPane)
    await wait_until(lambda: models.row_count == 4 and all(models.fit_of(n) for n in models.sorted_names()))
    return models


def notices(app: LlmdeckApp) -> str:
    return "\n".join(f"{n.title}: {n.message}" for n in app._notifications)


async def test_a_keymap_in_the_config_remaps_a_binding(
    standin: OllamaStandIn, recorded_probe: StaticProbe, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[keymap]\n"models.focus" = "f11"\n"nothing.here" = "f7"\n')
    app = build(standin, recorded_probe, settings_from(config, standin), tmp_path / "state.toml")
    async with app.run_test(size=SIZE) as pilot:
        models = await planned(app)
        await pilot.press("f2")
        assert not models.has_focus  # F2 no longer goes to the model list...
        await pilot.press("f11")
        assert models.has_focus  # ...F11 does
        await wait_until(lambda: "nothing.here" in notices(app))  # an id that names no binding is reported


async def test_f1_lists_every_binding_with_its_current_keys(
    standin: OllamaStandIn, recorded_probe: StaticProbe, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[keymap]\n"models.sort" = "f5"\n')
    app = build(standin, recorded_probe, settings_from(config, standin), tmp_path / "state.toml")
    async with app.run_test(size=SIZE) as pilot:
        await planned(app)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one(DataTable)
        rows = {str(table.get_row_at(i)[3]): table.get_row_at(i) for i in range(table.row_count)}
        assert {"app.quit", "app.help", "app.theme", "chat.stop", "models.sort", "models.unload"} <= set(rows)
        assert rows["models.sort"][1] == "f5"
        assert str(config) in str(app.screen.query_one("#help-note").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_a_broken_config_opens_with_a_message_and_the_file_untouched(
    standin: OllamaStandIn, recorded_probe: StaticProbe, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes(b'refresh = "fast"\ntheme = "llmdeck-light"\n[colours]\nx = 1\n')
    before = config.read_bytes()
    app = build(standin, recorded_probe, settings_from(config, standin), tmp_path / "state.toml")
    async with app.run_test(size=SIZE):
        await planned(app)
        await wait_until(lambda: "line 1: refresh must be" in notices(app))
        shown = notices(app)
        assert f"{config}, line 3: unknown table [colours]" in shown  # markup left as the user wrote it
        assert app.theme == "llmdeck-light"  # the good values still apply
    assert config.read_bytes() == before


async def test_f4_switches_theme_and_the_choice_is_remembered(
    standin: OllamaStandIn, recorded_probe: StaticProbe, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.toml"
    config = tmp_path / "config.toml"
    app = build(standin, recorded_probe, settings_from(config, standin), state_file)
    async with app.run_test(size=SIZE) as pilot:
        await planned(app)
        assert app.theme == "llmdeck-dark"
        await pilot.press("f4")
        assert app.theme != "llmdeck-dark"
        chosen = app.theme
        await wait_until(lambda: load_state(state_file)[0].theme == chosen)
    again = build(standin, recorded_probe, settings_from(config, standin), state_file)
    async with again.run_test(size=SIZE):
        assert again.theme == chosen
    # A theme written in config.toml after that choice wins again.
    config.write_text('theme = "llmdeck-16"\n')
    edited = build(standin, recorded_probe, settings_from(config, standin), state_file)
    async with edited.run_test(size=SIZE):
        assert edited.theme == "llmdeck-16"


async def test_the_chosen_model_and_its_context_are_remembered(
    standin: OllamaStandIn, recorded_probe: StaticProbe, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.toml"
    config = tmp_path / "config.toml"
    app = build(standin, recorded_probe, settings_from(config, standin), state_file)
    async with app.run_test(size=SIZE) as pilot:
        models = await planned(app)
        await pilot.press("f2")
        models.move_cursor(row=models.get_row_index("llama3.2:3b"))
        await pilot.press("enter")
        await pilot.press("f2", "c", "c")  # Ollama's default -> 2048 -> 4096
        await wait_until(lambda: load_state(state_file)[0].contexts.get("llama3.2:3b") == 4096)
        assert load_state(state_file)[0].last_model == "llama3.2:3b"
    again = build(standin, recorded_probe, settings_from(config, standin), state_file)
    async with again.run_test(size=SIZE):
        await planned(again)
        chat = again.query_one(ChatPane)
        await wait_until(lambda: chat.session is not None and chat.session.model == "llama3.2:3b")
        await wait_until(lambda: again.num_ctx == 4096)


async def test_the_config_default_model_comes_first(
    standin: OllamaStandIn, recorded_probe: StaticProbe, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.toml"
    save_state(state_file, State(last_model="llama3.1:8b"))
    config = tmp_path / "config.toml"
    config.write_text('default_model = "gemma2:2b-instruct-q8_0"\n')
    app = build(standin, recorded_probe, settings_from(config, standin), state_file)
    async with app.run_test(size=SIZE):
        await planned(app)
        chat = app.query_one(ChatPane)
        await wait_until(lambda: chat.session is not None and chat.session.model == "gemma2:2b-instruct-q8_0")
