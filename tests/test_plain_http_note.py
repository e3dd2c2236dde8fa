"""A server on another machine over plain HTTP: the hardware pane says prompts travel unencrypted."""

from __future__ import annotations

import pytest
from helpers import fast_settings, free_port, wait_until, widget_text
from ollama_standin import OllamaStandIn

from llmdeck.hardware import StaticProbe
from llmdeck.locality import is_local_host
from llmdeck.ollama_api import OllamaService
from llmdeck.ui.app import LlmdeckApp, create_app
from llmdeck.ui.hardware_pane import HardwarePane
from llmdeck.ui.models_pane import ModelsPane

NOTE = "plain HTTP: prompts and replies travel unencrypted"


def remote_app(host: str, probe: StaticProbe) -> LlmdeckApp:
    return create_app(
        OllamaService(host, connect_timeout_s=0.5), probe, fast_settings(host), is_local=lambda _: False
    )


def pane_words(app: LlmdeckApp) -> str:
    """The pane's text with its line breaks undone, as a reader takes in a wrapped note."""
    return " ".join(app.query_one(HardwarePane).text.split())


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_a_remote_server_over_plain_http_gets_the_unencrypted_note(
    size: tuple[int, int], standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = remote_app(standin.url, recorded_probe)
    async with app.run_test(size=size) as pilot:
        await wait_until(lambda: NOTE in pane_words(app))
        await pilot.pause()
        pane = app.query_one(HardwarePane)
        assert f"Ollama runs on {standin.url}" in pane_words(app)
        # However narrow the pane, the notes above the gauges are broken into lines that are
        # shown whole, not cut off at its edge.
        shown = widget_text(pane)
        lines = pane.text.splitlines()
        notes = lines[: next(index for index, line in enumerate(lines) if line.startswith("CPU"))]
        assert notes[0].startswith("Note")
        for line in notes:
            assert line.rstrip() in shown, f"{line!r} is cut off in:\n{shown}"
        # The note is about the server, not a fault: the models and the chat work as before.
        await wait_until(lambda: app.query_one(ModelsPane).row_count == 4)


async def test_a_remote_server_over_https_gets_no_such_note(recorded_probe: StaticProbe) -> None:
    host = f"https://127.0.0.1:{free_port()}"  # nothing listens: the note depends on the address alone
    app = remote_app(host, recorded_probe)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: f"Ollama runs on {host}" in pane_words(app))
        await pilot.pause()
        assert "unencrypted" not in pane_words(app)


async def test_a_local_server_over_plain_http_gets_no_note(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    answers: list[bool] = []

    def is_local(host: str) -> bool:
        answers.append(is_local_host(host))
        return answers[-1]

    app = create_app(
        OllamaService(standin.url), recorded_probe, fast_settings(standin.url), is_local=is_local
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: answers == [True] and "RTX 4090" in pane_words(app))
        await pilot.pause()
        assert "unencrypted" not in pane_words(app)
        assert "Ollama runs on" not in pane_words(app)
