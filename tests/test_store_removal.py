"""What removing a model frees: the blobs no other manifest names, on real store trees."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_factory import TINY, add_model

from llmdeck.fit.synth import Architecture
from llmdeck.store.removal import bytes_freed, canonical_name

OTHER = Architecture("llama", 3, 256, 512, 4, 2, 320, 2048)


def blob_size(root: Path, layer: dict[str, object]) -> int:
    return (root / "blobs" / str(layer["digest"]).replace(":", "-")).stat().st_size


def layers(manifest: dict[str, object]) -> list[dict[str, object]]:
    return [*manifest["layers"], manifest["config"]]  # type: ignore[list-item, misc]


def test_only_the_layers_no_other_model_uses_are_freed(tmp_path: Path) -> None:
    root = tmp_path / "models"
    # Same template layer in both; different weights and configs.
    first = add_model(root, "llama3.2:latest", TINY, "Q8_0")
    second = add_model(root, "someone/coder:7b", OTHER, "Q4_0")
    shared = {layer["digest"] for layer in layers(first)} & {layer["digest"] for layer in layers(second)}
    assert len(shared) == 1, "the template is the same blob"
    unshared = [layer for layer in layers(first) if layer["digest"] not in shared]
    expected = sum(blob_size(root, layer) for layer in unshared)
    assert expected > 0
    assert bytes_freed(root, "llama3.2:latest") == expected
    # The other way round too, and by the short names users type.
    assert bytes_freed(root, "llama3.2") == expected
    assert bytes_freed(root, "registry.ollama.ai/library/llama3.2:latest") == expected
    other_unshared = [layer for layer in layers(second) if layer["digest"] not in shared]
    assert bytes_freed(root, "someone/coder:7b") == sum(blob_size(root, layer) for layer in other_unshared)


def test_a_model_whose_every_layer_is_shared_frees_nothing(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, "llama3.2:latest")
    add_model(root, "llama3.2:copy")  # `ollama cp`: a second manifest, the same blobs
    assert bytes_freed(root, "llama3.2:copy") == 0


def test_the_only_model_frees_all_its_blobs(tmp_path: Path) -> None:
    root = tmp_path / "models"
    manifest = add_model(root, "hf.co/org/repo:Q8_0")
    everything = sum(blob_size(root, layer) for layer in layers(manifest))
    assert bytes_freed(root, "hf.co/org/repo:Q8_0") == everything


@pytest.mark.parametrize("case", ["no store", "no manifest", "unreadable manifest"])
def test_unknown_when_the_store_cannot_say(tmp_path: Path, case: str) -> None:
    root = tmp_path / "models"
    if case != "no store":
        add_model(root, "llama3.2:latest")
    if case == "unreadable manifest":
        broken = root / "manifests/registry.ollama.ai/library/other/latest"
        broken.parent.mkdir(parents=True)
        broken.write_text("{not json")
    name = "qwen2.5:14b" if case == "no manifest" else "llama3.2:latest"
    assert bytes_freed(root, name) is None


def test_a_blob_named_the_old_way_is_the_same_blob(tmp_path: Path) -> None:
    root = tmp_path / "models"
    first = add_model(root, "llama3.2:latest", TINY, "Q8_0")
    add_model(root, "someone/coder:7b", OTHER, "Q4_0")
    # Before March 2024 Ollama named blobs sha256:<hex>; the manifest still says sha256:<hex>.
    template = next(layer for layer in layers(first) if "template" in str(layer["mediaType"]))
    current = root / "blobs" / str(template["digest"]).replace(":", "-")
    current.rename(root / "blobs" / str(template["digest"]))
    unshared = [layer for layer in layers(first) if layer is not template]
    assert bytes_freed(root, "llama3.2:latest") == sum(blob_size(root, layer) for layer in unshared)


def test_names_are_compared_as_ollama_lists_them() -> None:
    assert canonical_name("llama3.2") == "llama3.2:latest"
    assert canonical_name("Qwen2.5:14B") == "qwen2.5:14b"
    assert canonical_name("registry.ollama.ai/library/qwen2.5:14b") == "qwen2.5:14b"
    assert canonical_name("registry.ollama.ai/someone/coder:7b") == "someone/coder:7b"
    assert canonical_name("hf.co/org/repo:Q4_K_M") == "hf.co/org/repo:q4_k_m"
    assert canonical_name("myhost:5000/ns/model") == "myhost:5000/ns/model:latest"
