"""Pulling a model: `/api/pull`'s progress through the real client, then the pull screen as a user
drives it, against the loopback stand-in."""

from __future__ import annotations

import asyncio
import re

import pytest
from helpers import fast_settings, free_port, type_text, wait_until
from ollama_standin import DISK_FULL_ERROR, UNKNOWN_MODEL_ERROR, OllamaStandIn, Pull
from textual.widgets import Input, ProgressBar

from llmdeck.fit.catalog import load_catalog
from llmdeck.fit.pick import Recommendations
from llmdeck.fit.report import FitRequest, FitRow, fit_model
from llmdeck.fit.target import build_target
from llmdeck.hardware import HardwareSnapshot, StaticProbe
from llmdeck.ollama_api import (
    ModelNotFound,
    OllamaResponseError,
    OllamaService,
    OllamaUnreachable,
    PullProgress,
    StreamInterrupted,
)
from llmdeck.pull_progress import PullMeter, explain_pull_error
from llmdeck.ui.app import LlmdeckApp, create_app
from llmdeck.ui.models_pane import ModelsPane
from llmdeck.ui.pull_screen import PullScreen

SIZE = (120, 40)


async def pull_all(service: OllamaService, model: str) -> list[PullProgress]:
    return [line async for line in service.pull(model)]


# The API


async def test_progress_lines_come_as_ollama_sends_them_and_end_with_success(
    ollama: OllamaService, standin: OllamaStandIn
) -> None:
    standin.pulls.append(Pull(total_bytes=1_000_000_000, chunks=4))
    lines = await pull_all(ollama, "llama3.2:1b")
    statuses = [line.status for line in lines]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    weights = [line for line in lines if line.digest == lines[1].digest]
    assert lines[1].status == f"pulling {lines[1].digest[7:19]}"  # type: ignore[index]
    assert weights[0].completed is None  # the first line of a layer has its size, no bytes yet
    assert [line.completed for line in weights[1:]] == [
        weights[0].total * chunk // 4  # type: ignore[operator]
        for chunk in range(1, 5)
    ]
    meter = PullMeter()
    for line in lines:
        meter.feed(line)
    assert meter.total == meter.completed == 1_000_000_000  # every layer, summed
    assert standin.pull_requests[-1] == {"model": "llama3.2:1b", "insecure": False, "stream": True}
    assert "llama3.2:1b" in {model.name for model in await ollama.list_models()}


async def test_an_error_line_mid_pull_is_raised_with_ollamas_words_after_the_lines_before_it(
    ollama: OllamaService, standin: OllamaStandIn
) -> None:
    standin.pulls.append(Pull(chunks=10, error_after_lines=5))
    received: list[PullProgress] = []
    with pytest.raises(OllamaResponseError) as caught:
        async for line in ollama.pull("llama3.2:1b"):
            received.append(line)
    assert len(received) == 5
    assert caught.value.message == DISK_FULL_ERROR
    assert "the disk that holds Ollama's models is full" in explain_pull_error("llama3.2:1b", DISK_FULL_ERROR)
    # Nothing half-listed: the server lists no model for a pull that failed.
    assert "llama3.2:1b" not in {model.name for model in await ollama.list_models()}


async def test_an_unknown_model_fails_as_ollama_says_it_in_the_stream(
    ollama: OllamaService, standin: OllamaStandIn
) -> None:
    with pytest.raises(OllamaResponseError) as caught:
        await pull_all(ollama, "llama9:405b")
    assert caught.value.message == UNKNOWN_MODEL_ERROR
    assert explain_pull_error("llama9:405b", caught.value.message).startswith(
        "no model called llama9:405b in the Ollama library: check the name at ollama.com/library"
    )


async def test_a_404_before_any_line_is_model_not_found(
    ollama: OllamaService, standin: OllamaStandIn
) -> None:
    standin.pulls.append(Pull(status=404, status_error=UNKNOWN_MODEL_ERROR))
    with pytest.raises(ModelNotFound, match="not in the registry") as caught:
        await pull_all(ollama, "nosuch")
    assert caught.value.server_message == UNKNOWN_MODEL_ERROR


async def test_a_stream_that_stops_before_success_is_an_error(standin: OllamaStandIn) -> None:
    from werkzeug.wrappers import Response

    standin.server.clear()
    lines = b'{"status":"pulling manifest"}\n{"status":"pulling abc","digest":"sha256:abc","total":9}\n'
    standin.server.expect_request("/api/pull", method="POST").respond_with_response(Response(lines, 200))
    service = OllamaService(standin.url)
    try:
        with pytest.raises(StreamInterrupted, match="before Ollama said it succeeded"):
            await pull_all(service, "llama3.2:1b")
    finally:
        await service.aclose()


async def test_closing_the_iterator_closes_the_servers_stream(
    ollama: OllamaService, standin: OllamaStandIn
) -> None:
    standin.pulls.append(Pull(chunks=200, chunk_delay_s=0.02))
    stream = ollama.pull("llama3.2:1b")
    async for line in stream:
        if line.completed:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    record = standin.pull_records[-1]
    assert await asyncio.to_thread(record.done.wait, 5.0)
    assert record.closed_by_client and not record.succeeded
    assert "llama3.2:1b" not in standin.models


async def test_pulling_from_a_server_that_is_not_there_says_so() -> None:
    host = f"http://127.0.0.1:{free_port()}"
    service = OllamaService(host, connect_timeout_s=1.0)
    try:
        with pytest.raises(OllamaUnreachable, match=f"cannot reach Ollama at {host}"):
            await pull_all(service, "llama3.2:1b")
    finally:
        await service.aclose()


# The pull screen


def build(standin: OllamaStandIn, probe: StaticProbe) -> LlmdeckApp:
    return create_app(OllamaService(standin.url), probe, fast_settings(standin.url))


def pull_screen(app: LlmdeckApp) -> PullScreen:
    screen = app.screen
    assert isinstance(screen, PullScreen)
    return screen


def status_line(app: LlmdeckApp) -> str:
    return str(app.screen.query_one("#pull-status").render())


async def open_pull_screen(app: LlmdeckApp, pilot: object, name: str, *, type_it: bool = False) -> PullScreen:
    await wait_until(lambda: app.query_one(ModelsPane).row_count > 0)
    app.action_focus_models()
    await pilot.press("p")  # type: ignore[attr-defined]
    await wait_until(lambda: isinstance(app.screen, PullScreen))
    screen = pull_screen(app)
    field = screen.query_one("#pull-name", Input)
    assert app.focused is field
    if type_it:
        # The suggestion prefilled is selected: typing replaces it.
        await type_text(pilot, name)  # type: ignore[arg-type]
        assert field.value == name
    else:
        field.value = name  # a key at a time costs a tenth of a second on a busy test machine
    return screen


async def test_a_pull_shows_its_progress_and_the_model_is_listed_only_after_success(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    standin.pulls.append(Pull(total_bytes=2_000_000_000, chunks=16, chunk_delay_s=0.06))
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pull_screen(app, pilot, "llama3.2:1b", type_it=True)
        await pilot.press("enter")
        bar = screen.query_one("#pull-progress", ProgressBar)
        await wait_until(lambda: bar.total is not None and 0 < bar.progress < bar.total, timeout=5)
        await wait_until(lambda: "/s" in status_line(app) and " left" in status_line(app), timeout=5)
        # "llama3.2:1b · 875.0 MB of 2.0 GB · 120.3 MB/s · 9 s left"
        assert re.search(r"[\d.]+ [MG]B of 2\.0 GB · [\d.]+ [MG]B/s · [\w ]+ left", status_line(app))
        assert "llama3.2:1b" not in app.query_one(ModelsPane).sorted_names()
        # Done: the screen closes and the list has the model.
        await wait_until(lambda: not isinstance(app.screen, PullScreen), timeout=5)
        await wait_until(lambda: "llama3.2:1b" in app.query_one(ModelsPane).sorted_names(), timeout=5)
        assert standin.pull_records[-1].succeeded
        assert any("pulled llama3.2:1b" in str(note.message) for note in app._notifications)


async def test_a_failing_pull_explains_why_and_lists_nothing(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    standin.pulls.append(Pull(chunks=10, error_after_lines=6, chunk_delay_s=0.01))
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pull_screen(app, pilot, "llama3.2:1b")
        await pilot.press("enter")
        await wait_until(lambda: "full" in status_line(app), timeout=5)
        assert "the disk that holds Ollama's models is full" in status_line(app)
        assert "no space left on device" in status_line(app)
        assert screen.pulling is None
        await asyncio.sleep(0.3)  # a heartbeat or two of the model list
        assert "llama3.2:1b" not in app.query_one(ModelsPane).sorted_names()
        # The name stays to fix or retry; Esc closes.
        assert screen.query_one("#pull-name", Input).value == "llama3.2:1b"
        await pilot.press("escape")
        await wait_until(lambda: not isinstance(app.screen, PullScreen))


async def test_an_unknown_name_says_to_check_the_library(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await open_pull_screen(app, pilot, "llama9:405b")
        await pilot.press("enter")
        await wait_until(lambda: "ollama.com/library" in status_line(app), timeout=5)
        assert "no model called llama9:405b in the Ollama library" in status_line(app)


async def test_escape_mid_pull_cancels_it_closes_the_stream_and_lists_nothing(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    standin.pulls.append(Pull(chunks=400, chunk_delay_s=0.02))
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pull_screen(app, pilot, "llama3.2:1b")
        await pilot.press("enter")
        await wait_until(lambda: bool(standin.pull_records) and standin.pull_records[-1].lines_sent > 5)
        await pilot.press("escape")
        await wait_until(lambda: screen.pulling is None)
        assert "cancelled" in status_line(app)
        record = standin.pull_records[-1]
        assert await asyncio.to_thread(record.done.wait, 5.0)
        assert record.closed_by_client and not record.succeeded
        assert isinstance(app.screen, PullScreen), "the screen stays to say so; Esc again closes it"
        await pilot.press("escape")
        await wait_until(lambda: not isinstance(app.screen, PullScreen))
        await asyncio.sleep(0.3)
        assert "llama3.2:1b" not in app.query_one(ModelsPane).sorted_names()


async def test_a_recommendation_fills_in_the_name(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.recommendations is not None, timeout=10)
        recommended = app.recommendations.full_gpu  # type: ignore[union-attr]
        assert recommended is not None
        await wait_until(lambda: app.query_one(ModelsPane).row_count > 0)
        app.action_focus_models()
        await pilot.press("p")
        await wait_until(lambda: isinstance(app.screen, PullScreen))
        screen = pull_screen(app)
        assert screen.query_one("#pull-name", Input).value == recommended.spec.name
        await pilot.press("tab", "down", "enter")  # the second suggestion
        partial = app.recommendations.partial  # type: ignore[union-attr]
        assert partial is not None
        assert screen.query_one("#pull-name", Input).value == partial.spec.name
        assert app.focused is screen.query_one("#pull-name", Input)


def test_a_suggestion_installed_under_its_short_name_is_marked_and_not_offered_first(
    recorded_snapshot: HardwareSnapshot,
) -> None:
    target = build_target(recorded_snapshot)

    def planned(tag: str) -> FitRow:
        entry, quant, _ = load_catalog().resolve(tag)
        return fit_model(entry.spec(quant), target, FitRequest())

    suggested = Recommendations(
        full_gpu=planned("llama3.2:3b"), partial=planned("qwen2.5:14b"), min_tokens_per_s=10
    )
    # `ollama pull llama3.2` lists llama3.2:latest, the catalog's llama3.2:3b.
    screen = PullScreen(OllamaService("http://127.0.0.1:9"), suggested, installed=["llama3.2:latest"])
    assert screen.initial == "qwen2.5:14b"  # the first suggestion not installed
    assert suggested.full_gpu is not None and suggested.partial is not None
    assert str(screen._option("all on GPU", suggested.full_gpu).prompt).endswith("· installed")
    assert "installed" not in str(screen._option("partly on GPU", suggested.partial).prompt)
