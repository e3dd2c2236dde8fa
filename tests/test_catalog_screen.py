"""The catalog in the app: every model and quant planned for this machine, filtered as typed,
the chosen one taken to the pull window."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from helpers import fast_settings, wait_until, widget_text
from ollama_standin import DEFAULT_MODELS, OllamaStandIn, library_model, start_standin
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from llmdeck.fit.catalog import load_catalog
from llmdeck.fit.session import CONTEXT_CHOICES
from llmdeck.hardware import StaticProbe
from llmdeck.ollama_api import OllamaService
from llmdeck.ui.app import LlmdeckApp, create_app
from llmdeck.ui.catalog_screen import SHOWN_AT_MOST, CatalogScreen
from llmdeck.ui.models_pane import VERDICT_RANK, ModelsPane
from llmdeck.ui.pull_screen import PullScreen
from llmdeck.ui.recommendation import RecommendationLine

SIZE = (120, 40)


def build(standin: OllamaStandIn, probe: StaticProbe) -> LlmdeckApp:
    return create_app(OllamaService(standin.url), probe, fast_settings(standin.url))


@asynccontextmanager
async def catalog_of(
    standin: OllamaStandIn, probe: StaticProbe
) -> AsyncIterator[tuple[LlmdeckApp, Pilot[None], CatalogScreen]]:
    """The app at 120x40 with its catalog window open from the model list."""
    app = build(standin, probe)
    async with app.run_test(size=SIZE) as pilot:
        yield app, pilot, await open_catalog(app, pilot)


async def open_catalog(app: LlmdeckApp, pilot: Pilot[None]) -> CatalogScreen:
    await wait_until(lambda: app.query_one(ModelsPane).row_count == 4)
    await wait_until(lambda: app.recommendations is not None, timeout=15)
    app.query_one(ModelsPane).focus()
    await pilot.press("b")
    await wait_until(lambda: isinstance(app.screen, CatalogScreen))
    assert isinstance(app.screen, CatalogScreen)
    return app.screen


def verdicts(screen: CatalogScreen) -> list[str]:
    table = screen.query_one(DataTable)
    return [str(table.get_row_at(row)[2]) for row in range(table.row_count)]


async def test_the_catalog_lists_what_runs_here_best_first_and_filters_as_typed(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    async with catalog_of(standin, recorded_probe) as (app, pilot, screen):
        published = sum(len(entry.tags) for entry in load_catalog().entries)
        assert len(screen.shown) == SHOWN_AT_MOST < published  # the best, until typing narrows it
        assert f"{published} of {published} models and quants (the best {SHOWN_AT_MOST} listed" in (
            widget_text(screen.query_one("#catalog-count"))
        )
        assert set(verdicts(screen)) == {"gpu"} and screen.query_one(Input).has_focus

        # On the 24 GB card: whole on the GPU first, then partly, the largest first within each.
        await pilot.press(*"llama3.1")
        await wait_until(lambda: len(screen.shown) < SHOWN_AT_MOST)
        ranks = [VERDICT_RANK[verdict] for verdict in verdicts(screen)]
        assert ranks == sorted(ranks, reverse=True) and set(verdicts(screen)) >= {"gpu", "partial", "none"}
        assert screen.shown.index("llama3.1:8b-instruct-fp16") < screen.shown.index("llama3.1:8b")

        await pilot.press(*["backspace"] * 8, *"70b q4_k_m")
        await wait_until(lambda: len(screen.shown) < 10)
        # The default tag does not name its quant, and is found all the same.
        assert "llama3.1:70b" in screen.shown and "llama3:70b-instruct-q4_K_M" in screen.shown
        table = screen.query_one(DataTable)
        assert {str(table.get_row(name)[1]) for name in screen.shown} == {"Q4_K_M"}
        assert set(verdicts(screen)) == {"partial"}  # 40+ GB of weights: partly on a 24 GB card
        assert f"of {published} models and quants" in widget_text(screen.query_one("#catalog-count"))

        # Installed models say so.
        await pilot.press(*["backspace"] * 10, *"llama3.1:8b")
        await wait_until(lambda: "llama3.1:8b" in screen.shown)
        table = screen.query_one(DataTable)
        assert str(table.get_row("llama3.1:8b")[0]).startswith("✓ ")
        assert not str(table.get_row("llama3.1:8b-instruct-q8_0")[0]).startswith("✓")

        # ↓ moves through the list while the filter keeps the keys; Enter takes it to the pull window.
        await pilot.press("down")
        chosen = screen.highlighted()
        assert chosen == screen.shown[1]
        await pilot.press("enter")
        await wait_until(lambda: isinstance(app.screen, PullScreen))
        assert app.screen.query_one("#pull-name", Input).value == chosen
        # The pull window, opened with p too, says where the whole catalog is.
        assert "b in the model list shows every model" in widget_text(app.screen.query_one("#pull-hint"))


async def test_esc_closes_the_catalog_and_nothing_is_pulled(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    async with catalog_of(standin, recorded_probe) as (app, pilot, _):
        await pilot.press("escape")
        await wait_until(lambda: not isinstance(app.screen, CatalogScreen))
        assert not isinstance(app.screen, PullScreen)
        assert app.query_one(ModelsPane).has_focus


async def test_an_open_catalog_follows_a_change_of_context(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    async with catalog_of(standin, recorded_probe) as (app, pilot, screen):
        assert screen.context == "ctx: Ollama's default"
        await pilot.press(*"llama3.1:8b")
        await wait_until(lambda: "llama3.1:8b" in screen.shown)
        before = {row.spec.name: row.plan.num_ctx for row in screen.rows}["llama3.1:8b"]
        # The context changes behind the window (as `c` in the model list does): the window lists
        # the new plans, under the new context, once they are made; the filter stays.
        app.query_one(ModelsPane).action_cycle_context()
        await wait_until(lambda: screen.context != "ctx: Ollama's default", timeout=15)
        context = int(screen.context.removeprefix("ctx "))
        after = {row.spec.name: row.plan.num_ctx for row in screen.rows}["llama3.1:8b"]
        assert after == context != before
        assert screen.query_one(Input).value == "llama3.1:8b" and "llama3.1:8b" in screen.shown


async def test_a_model_installed_as_latest_is_ticked_under_its_catalog_name(
    recorded_probe: StaticProbe,
) -> None:
    latest = library_model("llama3.2")  # what `ollama pull llama3.2` lists: llama3.2:latest
    assert latest is not None
    models = (*(model for model in DEFAULT_MODELS if model.name != "llama3.2:3b"), latest)
    standin = start_standin(models=models)
    try:
        async with catalog_of(standin, recorded_probe) as (_, pilot, screen):
            await pilot.press(*"llama3.2")
            await wait_until(lambda: "llama3.2:3b" in screen.shown)
            table = screen.query_one(DataTable)
            assert str(table.get_row("llama3.2:3b")[0]).startswith("✓ ")
            assert not str(table.get_row("llama3.2:1b")[0]).startswith("✓")
    finally:
        standin.server.stop()


async def test_planning_that_fails_says_so_instead_of_being_planned_for_ever(
    standin: OllamaStandIn, recorded_probe: StaticProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug in the planner (or a broken catalog file) is the only way here: injected. The plans
    # after the first wait to be let go, so the test sees the window while one is under way.
    calls: list[object] = []
    let_go = threading.Event()

    def broken(*_: object) -> None:
        calls.append(None)
        if len(calls) > 1:
            let_go.wait(10)
        raise RuntimeError("catalog broken")

    monkeypatch.setattr("llmdeck.ui.app.recommend", broken)
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.query_one(ModelsPane).row_count == 4)
        line = app.query_one(RecommendationLine)
        await wait_until(lambda: "catalog broken" in widget_text(line), timeout=15)
        assert "planning the catalog failed" in widget_text(line)
        app.query_one(ModelsPane).focus()
        await pilot.press("b")
        await wait_until(lambda: any("could not be planned" in str(n.message) for n in app._notifications))
        assert not isinstance(app.screen, CatalogScreen)
        assert not any("being planned" in str(n.message) for n in app._notifications)

        # Round the contexts back to this one, planned afresh: until that plan ends, the failure
        # of the first is not news.
        app.clear_notifications()
        planned_first = app.recommended_for
        for _ in CONTEXT_CHOICES:
            await pilot.press("c")
        await wait_until(lambda: app.recommended_for == planned_first and len(calls) > 1)
        await pilot.press("b")
        await wait_until(lambda: any("being planned" in str(n.message) for n in app._notifications))
        let_go.set()
        await wait_until(lambda: any("failed" in str(n.message) for n in app._notifications))
