"""At start the model list the server gave last time shows at once, until the server answers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from helpers import fast_settings, free_port, wait_until, widget_text
from ollama_standin import OllamaStandIn, start_standin
from textual.app import App, ComposeResult

from llmdeck import ollama_api
from llmdeck.hardware import StaticProbe
from llmdeck.model_cache import load_seen, model_cache_path, save_seen
from llmdeck.ollama_api import InstalledModel, OllamaService
from llmdeck.ui.app import OfflineBanner, create_app
from llmdeck.ui.chat_pane import ChatPane
from llmdeck.ui.models_pane import ModelsPane, when

SIZE = (120, 40)
GONE = InstalledModel("mistral:7b", 4_113_301_824, "7.2B", "Q4_0", "llama", "f974a74358d6")
KEPT = InstalledModel("llama3.1:8b", 4_920_753_328, "8.0B", "Q4_K_M", "llama", "46e0c10c039e")
SEEN_AT = datetime(2025, 1, 2, 12, 0, tzinfo=UTC)


def saved_names(host: str) -> list[str]:
    seen = load_seen(model_cache_path(), host)
    return [model.name for model in seen.models] if seen is not None else []


async def test_the_list_seen_last_time_shows_until_the_server_answers_then_the_servers_own(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    save_seen(model_cache_path(), standin.url, [GONE, KEPT], now=SEEN_AT)
    app = create_app(OllamaService(standin.url), recorded_probe, fast_settings(standin.url))
    with standin.tags_held() as answer:
        async with app.run_test(size=SIZE) as pilot:
            models = app.query_one(ModelsPane)
            await wait_until(lambda: models.row_count == 2)
            assert models.sorted_names() == ["llama3.1:8b", "mistral:7b"]
            assert models.border_subtitle == f"last seen {when(SEEN_AT)} · asking Ollama…"
            # Nothing is done to a model of that list until the server has answered.
            models.focus()
            await pilot.press("enter", "l", "x")
            assert not app.model_preselected and app.state.last_model is None
            session = app.query_one(ChatPane).session
            assert session is None or not session.model
            assert app.screen is app.screen_stack[0]  # no confirmation opened
            assert models.fit_of("llama3.1:8b") is None  # no plan from a list the server has not given
            assert not app.query_one(ChatPane).online

            answer.set()
            await wait_until(lambda: models.seen_at is None)
            assert models.sorted_names() == [
                "qwen2.5:14b",
                "llama3.1:8b",
                "gemma2:2b-instruct-q8_0",
                "llama3.2:3b",
            ]
            assert str(models.border_subtitle).startswith("4 installed")
            # And the next start shows this list.
            await wait_until(lambda: sorted(saved_names(standin.url)) == sorted(models.sorted_names()))
    seen = load_seen(model_cache_path(), standin.url)
    assert seen is not None and seen.seen_at > SEEN_AT


async def test_a_server_with_no_model_replaces_the_list_seen_last_time_with_none(
    recorded_probe: StaticProbe,
) -> None:
    empty = start_standin(models=())
    try:
        save_seen(model_cache_path(), empty.url, [GONE, KEPT], now=SEEN_AT)
        app = create_app(OllamaService(empty.url), recorded_probe, fast_settings(empty.url))
        async with app.run_test(size=SIZE):
            models = app.query_one(ModelsPane)
            await wait_until(lambda: models.seen_at is None and app.server_version is not None)
            assert models.row_count == 0
            assert models.border_subtitle == "none installed · p pulls one"
            await wait_until(lambda: saved_names(empty.url) == [])
    finally:
        empty.server.stop()


async def test_a_server_that_is_down_clears_the_list_seen_last_time(recorded_probe: StaticProbe) -> None:
    host = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    save_seen(model_cache_path(), host, [GONE, KEPT], now=SEEN_AT)
    app = create_app(OllamaService(host, connect_timeout_s=0.5), recorded_probe, fast_settings(host))
    async with app.run_test(size=SIZE):
        await wait_until(lambda: app.query_one(OfflineBanner).has_class("shown"))
        models = app.query_one(ModelsPane)
        assert models.row_count == 0
        assert models.border_subtitle == "Ollama not reachable"
    seen = load_seen(model_cache_path(), host)
    assert seen is not None and seen.models == [GONE, KEPT]  # kept for when it is back


def test_a_list_seen_today_says_when_and_an_older_one_the_date() -> None:
    now = datetime(2026, 11, 23, 15, 0).astimezone()
    assert when(now.replace(hour=9, minute=5), now=now) == "09:05"
    assert when(now.replace(day=20), now=now) == "2026-11-20"


async def test_the_pane_drops_the_list_seen_last_time_when_the_server_is_found_down() -> None:
    class PaneApp(App[None]):
        def compose(self) -> ComposeResult:
            yield ModelsPane(id="models")

    app = PaneApp()
    async with app.run_test(size=(80, 12)):
        pane = app.query_one(ModelsPane)
        pane.show_seen([GONE, KEPT], SEEN_AT)
        assert pane.sorted_names() == ["llama3.1:8b", "mistral:7b"]
        assert not pane.check_action("details", ())
        pane.show_unavailable("Ollama not reachable")
        assert pane.row_count == 0 and pane.seen_at is None
        assert pane.border_subtitle == "Ollama not reachable"
        pane.show_fits({}, "")  # a later redraw (plans, the theme) keeps saying why it is empty
        assert pane.border_subtitle == "Ollama not reachable"


async def test_a_client_that_cannot_be_set_up_is_named_in_the_banner(
    standin: OllamaStandIn, recorded_probe: StaticProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a fresh llmdeck, a CA bundle that does not exist makes importing the client fail
    # (tests/test_ollama_api.py shows it for real); in this process the client is loaded, so the
    # failure is injected where the import happens.
    def broken_import() -> None:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(ollama_api, "ollama", None)
    monkeypatch.setattr(ollama_api, "load_client_libraries", broken_import)
    app = create_app(OllamaService(standin.url), recorded_probe, fast_settings(standin.url))
    async with app.run_test(size=SIZE):
        banner = app.query_one(OfflineBanner)
        await wait_until(lambda: "llmdeck cannot set up the Ollama client" in widget_text(banner))
        assert "FileNotFoundError" in widget_text(banner)
        assert app.is_running
