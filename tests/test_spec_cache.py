"""What the planner read of each model, kept by digest so the next start need not read it again."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import fast_settings, wait_until
from ollama_standin import OllamaStandIn

from llmdeck import __version__
from llmdeck.fit.synth import Architecture, synthesize
from llmdeck.hardware import StaticProbe
from llmdeck.ollama_api import OllamaService
from llmdeck.spec_cache import SPECS_KEPT, load_specs, save_specs, spec_cache_path
from llmdeck.ui.app import LlmdeckApp, create_app
from llmdeck.ui.models_pane import ModelsPane

LLAMA = synthesize(Architecture("llama", 32, 4096, 14336, 32, 8, 128256, 131072), "Q4_K_M", "llama3.1:8b")
GEMMA = replace(
    synthesize(Architecture("gemma2", 26, 2304, 9216, 8, 4, 256000, 8192), "Q8_0", "gemma2:2b"),
    sliding_window=4096,
    tied_embeddings=True,
)


def test_a_spec_comes_back_exactly_as_it_was_saved(tmp_path: Path) -> None:
    path = tmp_path / "specs.json"
    save_specs(path, {"sha-llama": LLAMA})
    save_specs(path, {"sha-gemma": GEMMA})
    assert load_specs(path) == {"sha-llama": LLAMA, "sha-gemma": GEMMA}


def test_another_llmdeck_version_reads_the_facts_again(tmp_path: Path) -> None:
    path = tmp_path / "specs.json"
    save_specs(path, {"sha-llama": LLAMA})
    data = json.loads(path.read_text())
    assert data["llmdeck"] == __version__
    data["llmdeck"] = "0.0.1"
    path.write_text(json.dumps(data))
    assert load_specs(path) == {}


@pytest.mark.parametrize(
    "change",
    [
        {"block_count": "32"},
        {"layer_bytes": [1, 2, 3]},  # not one per block
        {"source": "somewhere"},
        {"sliding_window": 1.5},
        {"tied_embeddings": 1},
        {"unknown_field": 1},
    ],
)
def test_an_entry_of_the_wrong_shape_is_read_again_and_the_others_kept(
    tmp_path: Path, change: dict[str, object]
) -> None:
    path = tmp_path / "specs.json"
    save_specs(path, {"sha-llama": LLAMA, "sha-gemma": GEMMA})
    data = json.loads(path.read_text())
    data["specs"]["sha-llama"].update(change)
    path.write_text(json.dumps(data))
    assert load_specs(path) == {"sha-gemma": GEMMA}


@pytest.mark.parametrize("content", ["{not json", "[]", '{"format": 1}', '{"format": 1, "llmdeck": "x"}'])
def test_an_unusable_file_is_as_if_nothing_was_read_and_the_next_save_mends_it(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "specs.json"
    path.write_text(content)
    assert load_specs(path) == {}
    save_specs(path, {"sha-llama": LLAMA})
    assert load_specs(path) == {"sha-llama": LLAMA}


def test_only_the_models_read_last_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "specs.json"
    save_specs(path, {f"sha-{index}": LLAMA for index in range(SPECS_KEPT)})
    save_specs(path, {"sha-0": GEMMA, "sha-new": LLAMA})  # sha-0 read again: now among the latest
    kept = load_specs(path)
    assert len(kept) == SPECS_KEPT
    assert "sha-1" not in kept  # the oldest went
    assert kept["sha-0"] == GEMMA and kept["sha-new"] == LLAMA


def test_the_file_is_private_and_lives_in_llmdecks_cache_folder(isolated_home: Path) -> None:
    path = spec_cache_path()
    assert path.is_relative_to(isolated_home / ".cache" / "llmdeck")
    save_specs(path, {"sha-llama": LLAMA})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def build(standin: OllamaStandIn, probe: StaticProbe) -> LlmdeckApp:
    return create_app(OllamaService(standin.url), probe, fast_settings(standin.url))


async def plans_of(app: LlmdeckApp) -> dict[str, object]:
    models = app.query_one(ModelsPane)
    await wait_until(lambda: models.row_count == 4 and all(models.fit_of(n) for n in models.sorted_names()))
    return {name: models.fit_of(name) for name in models.sorted_names()}


async def test_the_next_start_plans_from_what_was_read_without_asking_for_the_tensor_tables(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    first = build(standin, recorded_probe)
    async with first.run_test(size=(120, 40)):
        first_plans = await plans_of(first)
        await wait_until(lambda: len(load_specs(spec_cache_path())) == 4)
    assert all(request.get("verbose") for request in standin.show_requests)

    standin.show_requests.clear()
    second = build(standin, recorded_probe)
    async with second.run_test(size=(120, 40)):
        assert await plans_of(second) == first_plans
        assert second.specs == first.specs
    # Still asked (where the files are is the server's to say), but not for the tensor tables.
    assert sorted(request["model"] for request in standin.show_requests) == sorted(standin.models)
    assert not any(request.get("verbose") for request in standin.show_requests)


async def test_a_model_replaced_under_the_same_name_is_read_again(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    first = build(standin, recorded_probe)
    async with first.run_test(size=(120, 40)):
        await plans_of(first)
        await wait_until(lambda: len(load_specs(spec_cache_path())) == 4)

    # `ollama pull` of a newer llama3.1:8b: same name, other files, another digest.
    standin.models["llama3.1:8b"] = replace(standin.models["llama3.1:8b"], digest="f" * 64)
    standin.show_requests.clear()
    second = build(standin, recorded_probe)
    async with second.run_test(size=(120, 40)):
        await plans_of(second)
    verbose = [request["model"] for request in standin.show_requests if request.get("verbose")]
    assert verbose == ["llama3.1:8b"]
