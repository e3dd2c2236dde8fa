"""Removing, loading and describing models from the models pane, as a user drives it (Pilot
against the loopback stand-in, with a real store tree where the bytes freed matter)."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import fast_settings, wait_until, widget_text
from ollama_standin import OllamaStandIn
from store_factory import TINY, add_model

from llmdeck.config import Settings
from llmdeck.fit.synth import Architecture
from llmdeck.hardware import StaticProbe
from llmdeck.ollama_api import ModelNotFound, OllamaService
from llmdeck.store.removal import bytes_freed
from llmdeck.ui.app import LlmdeckApp, create_app
from llmdeck.ui.chat_pane import ChatPane
from llmdeck.ui.confirm_screen import ConfirmScreen
from llmdeck.ui.details_screen import DetailsScreen
from llmdeck.ui.hardware_pane import HardwarePane
from llmdeck.ui.models_pane import ModelsPane
from llmdeck.units import decimal_size

SIZE = (120, 40)
LICENSE = "\n".join(
    [
        "LLAMA 3.1 COMMUNITY LICENSE AGREEMENT",
        "Llama 3.1 Version Release Date: July 23, 2024",
        *[f"clause {number} \x1b]0;pwned\x07" for number in range(1, 40)],
    ]
)
# As /api/show prints a Modelfile's PARAMETER lines: the name padded to a column, then the value.
PARAMETERS = "\n".join(f"{'stop':<31}{value}" for value in ('"<|start_header_id|>"', '"<|eot_id|>"'))


def build(standin: OllamaStandIn, probe: StaticProbe, settings: Settings | None = None) -> LlmdeckApp:
    return create_app(OllamaService(standin.url), probe, settings or fast_settings(standin.url))


def notifications(app: LlmdeckApp) -> list[str]:
    return [str(note.message) for note in app._notifications]


async def highlight(app: LlmdeckApp, name: str) -> ModelsPane:
    pane = app.query_one(ModelsPane)
    await wait_until(lambda: name in pane.sorted_names())
    app.action_focus_models()
    pane.move_cursor(row=pane.get_row_index(name), animate=False)
    assert pane.highlighted() == name
    return pane


def confirm_screen(app: LlmdeckApp) -> ConfirmScreen:
    screen = app.screen
    assert isinstance(screen, ConfirmScreen)
    return screen


# The API, through the real client


async def test_delete_removes_a_model_and_an_unknown_one_is_model_not_found(
    ollama: OllamaService, standin: OllamaStandIn
) -> None:
    await ollama.delete("llama3.2:3b")
    assert "llama3.2:3b" not in {model.name for model in await ollama.list_models()}
    assert standin.delete_requests == [{"model": "llama3.2:3b"}]
    with pytest.raises(ModelNotFound, match="not installed") as caught:
        await ollama.delete("llama3.2:3b")
    assert caught.value.server_message == "model 'llama3.2:3b' not found"


async def test_load_puts_the_model_in_memory_for_the_keep_alive_asked(
    ollama: OllamaService, standin: OllamaStandIn
) -> None:
    # Ollama answers a load with done_reason "load" and no durations: nothing to report.
    assert await ollama.load("llama3.2:3b", {"num_ctx": 8192}, keep_alive=-1) is None
    request = standin.chat_requests[-1]
    assert (request["messages"], request["options"], request["keep_alive"]) == ([], {"num_ctx": 8192}, -1)
    [running] = await ollama.running()
    assert running.name == "llama3.2:3b"
    assert running.expires_at is not None
    assert running.expires_at - datetime.now(UTC) > timedelta(days=20 * 365)  # "Forever" in `ollama ps`
    with pytest.raises(ModelNotFound):
        await ollama.load("llama9:405b")


async def test_chat_sends_keep_alive_only_when_given(ollama: OllamaService, standin: OllamaStandIn) -> None:
    question = [{"role": "user", "content": "hi"}]
    [_ async for _ in ollama.chat("llama3.2:3b", question)]
    assert "keep_alive" not in standin.chat_requests[-1]  # the server's OLLAMA_KEEP_ALIVE applies
    [_ async for _ in ollama.chat("llama3.2:3b", question, keep_alive="30s")]
    assert standin.chat_requests[-1]["keep_alive"] == "30s"
    [_ async for _ in ollama.chat("llama3.2:3b", question, keep_alive=0)]
    assert standin.chat_requests[-1]["keep_alive"] == 0
    assert await ollama.running() == []  # 0: unloaded as soon as the reply ended


# Remove


async def test_remove_names_the_bytes_freed_no_keeps_it_yes_removes_it(
    standin: OllamaStandIn, recorded_probe: StaticProbe, tmp_path: Path
) -> None:
    store = tmp_path / "models"
    # Two models sharing their template layer: only the other layers are freed.
    add_model(store, "qwen2.5:14b", Architecture("qwen2", 2, 256, 512, 4, 2, 320, 2048), "Q4_0")
    add_model(store, "llama3.1:8b", TINY, "Q8_0")
    freed = bytes_freed(store, "qwen2.5:14b")
    assert freed is not None and 0 < freed < sum(p.stat().st_size for p in (store / "blobs").iterdir())
    standin.store_root = str(store)  # the FROM lines of /api/show: how llmdeck finds the server's store
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.store_path == store)
        pane = await highlight(app, "qwen2.5:14b")
        await pilot.press("x")
        await wait_until(lambda: isinstance(app.screen, ConfirmScreen))
        question = confirm_screen(app).question_text
        assert question.startswith(
            f"Remove qwen2.5:14b? This frees {decimal_size(freed)} (blobs no other model uses)."
        )
        assert app.focused is not None and app.focused.id == "confirm-no"  # No is the default
        await pilot.press("n")
        await wait_until(lambda: not isinstance(app.screen, ConfirmScreen))
        assert standin.delete_requests == []
        assert "qwen2.5:14b" in pane.sorted_names()

        await pilot.press("x")
        await wait_until(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(lambda: "qwen2.5:14b" not in pane.sorted_names())
        assert standin.delete_requests == [{"model": "qwen2.5:14b"}]
        assert f"removed qwen2.5:14b, {decimal_size(freed)} freed" in notifications(app)
        # The chat moves on to a model that is still there.
        chat = app.query_one(ChatPane)
        assert chat.session is not None and chat.session.model in pane.sorted_names()


async def test_without_a_readable_store_the_confirmation_says_up_to_the_listed_size(
    standin: OllamaStandIn, recorded_probe: StaticProbe, tmp_path: Path
) -> None:
    standin.store_root = str(tmp_path / "not-here")
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.store_path == tmp_path / "not-here")
        await highlight(app, "qwen2.5:14b")
        await pilot.press("delete")
        await wait_until(lambda: isinstance(app.screen, ConfirmScreen))
        assert confirm_screen(app).question_text.startswith(
            "Remove qwen2.5:14b? This frees up to 9.0 GB "
            "(the size Ollama lists; layers shared with other models stay)."
        )
        await pilot.press("escape")
        await wait_until(lambda: not isinstance(app.screen, ConfirmScreen))
        assert standin.delete_requests == []


async def test_a_model_removed_meanwhile_is_reported_and_the_list_follows(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        pane = await highlight(app, "llama3.2:3b")
        await pilot.press("x")
        await wait_until(lambda: isinstance(app.screen, ConfirmScreen))
        del standin.models["llama3.2:3b"]  # `ollama rm` in another terminal
        await pilot.press("y")
        await wait_until(lambda: any("could not remove llama3.2:3b" in n for n in notifications(app)))
        assert any("not installed" in n for n in notifications(app))
        await wait_until(lambda: "llama3.2:3b" not in pane.sorted_names())


# Load ahead of chatting


async def test_load_sends_an_empty_chat_with_the_chats_options_and_keep_alive(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    settings = dataclasses.replace(fast_settings(standin.url), keep_alive="10m")
    app = build(standin, recorded_probe, settings)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.query_one(ChatPane)
        await wait_until(lambda: chat.session is not None and chat.session.model in app.fits)
        model = chat.session.model  # type: ignore[union-attr]
        await highlight(app, model)
        await pilot.press("c")  # a context of 2048 chosen: the chat will send num_ctx
        await wait_until(lambda: dict(chat.session.options) == {"num_ctx": 2048})  # type: ignore[union-attr]
        await pilot.press("l")
        await wait_until(lambda: any(n.startswith(f"{model} loaded in ") for n in notifications(app)))
        assert f"loading {model}…" in notifications(app)
        request = standin.chat_requests[-1]
        assert request["model"] == model and request["messages"] == []
        assert request["options"] == {"num_ctx": 2048}
        assert request["keep_alive"] == "10m"
        # /api/ps has it now, for the 10 minutes asked, and the hardware pane shows it.
        await wait_until(lambda: any(entry.name == model for entry in app.running or []))
        [entry] = [entry for entry in app.running or [] if entry.name == model]
        assert entry.expires_at is not None
        left = entry.expires_at - datetime.now(UTC)
        assert timedelta(minutes=9) < left <= timedelta(minutes=10)
        await wait_until(lambda: model in widget_text(app.query_one(HardwarePane)))


async def test_load_of_another_model_sends_its_own_plans_options_and_no_keep_alive_by_default(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.query_one(ChatPane)
        await wait_until(lambda: chat.session is not None and "llama3.2:3b" in app.fits)
        assert chat.session is not None and chat.session.model != "llama3.2:3b"
        await highlight(app, "llama3.2:3b")
        await pilot.press("l")
        await wait_until(lambda: any(n.startswith("llama3.2:3b loaded in ") for n in notifications(app)))
        request = standin.chat_requests[-1]
        assert request["messages"] == [] and request["model"] == "llama3.2:3b"
        # A model that fits the GPU whole at Ollama's default context needs no options; no
        # keep_alive is sent, so the server's OLLAMA_KEEP_ALIVE applies.
        assert "options" not in request and "keep_alive" not in request
        await wait_until(lambda: any(entry.name == "llama3.2:3b" for entry in app.running or []))


async def test_a_failed_load_says_why(standin: OllamaStandIn, recorded_probe: StaticProbe) -> None:
    # No heartbeat meanwhile: the list must still show the model the server no longer has.
    app = build(standin, recorded_probe, replace(fast_settings(standin.url), heartbeat_s=60))
    async with app.run_test(size=SIZE) as pilot:
        await highlight(app, "llama3.2:3b")
        del standin.models["llama3.2:3b"]
        await pilot.press("l")
        await wait_until(lambda: any(n.startswith("could not load llama3.2:3b") for n in notifications(app)))
        assert any("not installed on this server" in n for n in notifications(app))


# Details


async def test_details_show_ollamas_description_and_the_plan(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    model = standin.models["llama3.1:8b"]
    standin.models["llama3.1:8b"] = dataclasses.replace(
        model, license=LICENSE, parameters=PARAMETERS, capabilities=("completion", "tools")
    )
    app = build(standin, recorded_probe)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: "llama3.1:8b" in app.fits)
        await highlight(app, "llama3.1:8b")
        await pilot.press("i")
        await wait_until(lambda: isinstance(app.screen, DetailsScreen))
        screen = app.screen
        assert isinstance(screen, DetailsScreen)
        await wait_until(lambda: screen.show is not None)
        await pilot.pause()
        facts = str(screen.query_one("#details-facts").render())
        for line in (
            "architecture          llama",
            "parameters            8.0B (8,030,261,248)",
            "quantization          Q4_K_M",
            "context length        131,072 tokens",
            "capabilities          completion, tools",
            "license               LLAMA 3.1 COMMUNITY LICENSE AGREEMENT",
            'Modelfile parameters  stop "<|start_header_id|>"',
            '                      stop "<|eot_id|>"',
        ):
            assert line in facts, f"{line!r} not in\n{facts}"
        plan = app.fits["llama3.1:8b"].plan
        shown_plan = str(screen.query_one("#details-plan").render())
        assert f"verdict               {plan.verdict}: every layer on the GPU" in shown_plan
        assert f"GPU layers (num_gpu)  {plan.num_gpu} of {plan.layers_total}" in shown_plan
        assert plan.processor in shown_plan and f"{plan.num_ctx:,} tokens" in shown_plan
        assert "tok/s estimated" in shown_plan
        # The whole license is there to scroll to, inert.
        license_text = str(screen.query_one("#details-license").render())
        assert "clause 39" in license_text
        assert "\x1b" not in license_text + facts and "\x07" not in license_text
        await pilot.press("escape")
        await wait_until(lambda: not isinstance(app.screen, DetailsScreen))
        assert isinstance(app.focused, ModelsPane)


async def test_details_of_a_model_gone_meanwhile_say_so(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    # No heartbeat meanwhile: the list must still show the model the server no longer has.
    app = build(standin, recorded_probe, replace(fast_settings(standin.url), heartbeat_s=60))
    async with app.run_test(size=SIZE) as pilot:
        await highlight(app, "llama3.2:3b")
        del standin.models["llama3.2:3b"]
        await pilot.press("i")
        await wait_until(lambda: isinstance(app.screen, DetailsScreen))
        facts = app.screen.query_one("#details-facts")
        await wait_until(lambda: "could not describe" in str(facts.render()))
        assert "llama3.2:3b" in str(facts.render())
