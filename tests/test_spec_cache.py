"""What the planner read of each model, kept by digest so the next start need not read it again."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import fast_settings, wait_until
from ollama_standin import OllamaStandIn

from llmdeck.fit.synth import Architecture, synthesize
from llmdeck.hardware import StaticProbe
from llmdeck.ollama_api import OllamaService
from llmdeck.spec_cache import (
    MAX_FILE_BYTES,
    SPECS_KEPT,
    facts_key,
    load_specs,
    reader_fingerprint,
    save_specs,
    spec_cache_path,
)
from llmdeck.ui.app import LlmdeckApp, create_app
from llmdeck.ui.models_pane import ModelsPane

GIB = 1024**3
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


def test_facts_read_by_other_code_are_read_again(tmp_path: Path) -> None:
    path = tmp_path / "specs.json"
    save_specs(path, {"sha-llama": LLAMA})
    data = json.loads(path.read_text())
    assert data["reader"] == reader_fingerprint()
    data["reader"] = "another llmdeck"
    path.write_text(json.dumps(data))
    assert load_specs(path) == {}


def test_the_facts_are_kept_under_the_files_and_the_server_that_described_them() -> None:
    blobs = [Path("/models/blobs/sha256-aa"), Path("/models/blobs/sha256-bb")]
    assert facts_key(blobs, "0.12.10") == "sha256-aa+sha256-bb@0.12.10"
    assert facts_key(blobs, "0.13.0") != facts_key(blobs, "0.12.10")
    assert facts_key([Path("/somewhere/model.gguf")], "0.12.10") is None


@pytest.mark.parametrize(
    "change",
    [
        {"block_count": "32"},
        {"layer_bytes": [1, 2, 3]},  # not one per block
        {"source": "somewhere"},
        {"sliding_window": 1.5},
        {"tied_embeddings": 1},
        {"unknown_field": 1},
        {"output_bytes": -1},
        {"layer_bytes": [True] * 32},
        {"expert_count": 8, "expert_used_count": 2, "expert_layer_bytes": [1]},  # one per block, or none
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


def test_an_entry_missing_a_field_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "specs.json"
    save_specs(path, {"sha-llama": LLAMA, "sha-gemma": GEMMA})
    data = json.loads(path.read_text())
    del data["specs"]["sha-llama"]["output_bytes"]
    path.write_text(json.dumps(data))
    assert load_specs(path) == {"sha-gemma": GEMMA}


def test_a_file_too_large_to_be_llmdecks_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "specs.json"
    save_specs(path, {"sha-llama": LLAMA})
    with path.open("a") as file:
        file.truncate(MAX_FILE_BYTES + 1)
    assert load_specs(path) == {}


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
    assert sorted(asked(standin, verbose=True)) == sorted(standin.models)

    standin.show_requests.clear()
    second = build(standin, recorded_probe)
    async with second.run_test(size=(120, 40)):
        assert await plans_of(second) == first_plans
        assert second.specs == first.specs
    # Still asked where its files are (the server's to say), but not for the tensor tables.
    assert sorted(asked(standin, verbose=False)) == sorted(standin.models)
    assert asked(standin, verbose=True) == []


def asked(standin: OllamaStandIn, *, verbose: bool) -> list[str]:
    return [request["model"] for request in standin.show_requests if bool(request.get("verbose")) == verbose]


async def test_a_model_pulled_again_with_other_files_is_read_again(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    first = build(standin, recorded_probe)
    async with first.run_test(size=(120, 40)):
        before = (await plans_of(first))["llama3.1:8b"]
        await wait_until(lambda: len(load_specs(spec_cache_path())) == 4)

    # `ollama pull` of a llama3.1:8b made of other files: another quant, so other facts.
    standin.models["llama3.1:8b"] = replace(
        standin.models["llama3.1:8b"], digest="f" * 64, catalog="llama3.1:8b-instruct-q8_0"
    )
    standin.show_requests.clear()
    second = build(standin, recorded_probe)
    async with second.run_test(size=(120, 40)):
        after = (await plans_of(second))["llama3.1:8b"]
    assert asked(standin, verbose=True) == ["llama3.1:8b"]
    assert before.spec.file_type == "Q4_K_M" and after.spec.file_type == "Q8_0"  # type: ignore[attr-defined]


async def test_a_model_pulled_again_while_llmdeck_runs_is_read_again(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = build(standin, recorded_probe)
    async with app.run_test(size=(120, 40)):
        models = app.query_one(ModelsPane)
        await plans_of(app)
        standin.models["llama3.1:8b"] = replace(
            standin.models["llama3.1:8b"], digest="f" * 64, catalog="llama3.1:8b-instruct-q8_0"
        )
        # The watch reads the list again (every 0.2 s here) and sees the new digest.
        await wait_until(lambda: getattr(models.fit_of("llama3.1:8b"), "spec", LLAMA).file_type == "Q8_0")


async def test_a_projector_is_measured_on_every_start_and_counted_once(
    tmp_path: Path, standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    projector = tmp_path / "models" / "blobs" / f"sha256-{'e' * 64}"
    projector.parent.mkdir(parents=True)
    projector.touch()
    os.truncate(projector, GIB)  # sparse: takes no disk
    standin.store_root = str(tmp_path / "models")
    standin.models["llama3.1:8b"] = replace(standin.models["llama3.1:8b"], projector_digest="e" * 64)
    first = build(standin, recorded_probe)
    async with first.run_test(size=(120, 40)):
        first_plans = await plans_of(first)
        await wait_until(lambda: len(load_specs(spec_cache_path())) == 4)
    second = build(standin, recorded_probe)
    async with second.run_test(size=(120, 40)):
        second_plans = await plans_of(second)
    assert second_plans == first_plans
    assert second_plans["llama3.1:8b"].spec.projector_bytes == GIB  # type: ignore[attr-defined]
