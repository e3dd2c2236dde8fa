"""The catalog: tags resolve as a user types them, and derived file sizes match the published ones."""

from __future__ import annotations

import re

import pytest

from llmdeck.fit.catalog import CatalogEntry, UnknownModel, installed_matcher, load_catalog

FAMILIES_ASKED_FOR = [
    "llama2",
    "llama3",
    "llama3.1",
    "llama3.2",
    "llama3.3",
    "codellama",
    "mistral",
    "mistral-nemo",
    "mistral-small",
    "mistral-small3.1",
    "mixtral",
    "qwen2",
    "qwen2.5",
    "qwen2.5-coder",
    "qwen3",
    "qwen3-coder",
    "gemma",
    "gemma2",
    "gemma3",
    "phi3",
    "phi4",
    "deepseek-r1",
    "deepseek-v2",
    "command-r",
    "gpt-oss",
]


def published(entry: CatalogEntry, quant: str) -> tuple[float, float] | None:
    """The interval the published size allows: exact bytes, or a rounded "4.9 GB" string."""
    tag = entry.tags.get(quant, {})
    if tag.get("bytes"):
        return float(tag["bytes"]), float(tag["bytes"])
    match = re.fullmatch(r"([\d.]+)\s*(GB|MB)", str(tag.get("size", "")))
    if not match:
        return None
    value, unit = match.group(1), 1e9 if match.group(2) == "GB" else 1e6
    half = 0.5 * 10 ** -(len(value.split(".")[1]) if "." in value else 0)
    return (float(value) - half) * unit, (float(value) + half) * unit


def relative_miss(size: float, interval: tuple[float, float]) -> float:
    low, high = interval
    if low <= size <= high:
        return 0.0
    return min(abs(size - low) / low, abs(size - high) / high)


def test_every_family_the_issue_names_is_in_the_catalog() -> None:
    assert set(FAMILIES_ASKED_FOR) <= set(load_catalog().families())


@pytest.mark.parametrize("entry", [e for e in load_catalog().entries], ids=lambda e: f"{e.family}:{e.size}")
def test_default_tag_size_within_3_percent_of_the_published_file(entry: CatalogEntry) -> None:
    interval = published(entry, entry.default_quant)
    if interval is None:
        pytest.skip("no published size for this tag")
    size = entry.spec().file_bytes
    # The published size also holds the GGUF header and the tokenizer: a few MB at most.
    assert relative_miss(size, interval) <= 0.03, f"{size / 1e9:.2f} GB vs {interval}"


def test_most_published_quant_variants_are_within_3_percent() -> None:
    """The library's variant sizes (rounded, many from 2023-24 files made by older quantizer rules)."""
    misses = []
    total = 0
    for entry in load_catalog().entries:
        for quant, tag in entry.tags.items():
            interval = published(entry, quant)
            if interval is None:
                continue
            total += 1
            if relative_miss(entry.spec(quant).file_bytes, interval) > 0.03:
                misses.append(tag["tag"])
    assert total > 400
    assert len(misses) / total <= 0.04, misses  # 15 of 663 on 2026-11-22


@pytest.mark.parametrize(
    ("typed", "family", "size", "quant"),
    [
        ("llama3.1", "llama3.1", "8b", "Q4_K_M"),
        ("llama3.1:latest", "llama3.1", "8b", "Q4_K_M"),
        ("llama3.1:70b", "llama3.1", "70b", "Q4_K_M"),
        ("qwen2.5:32b-instruct-q4_K_M", "qwen2.5", "32b", "Q4_K_M"),
        ("gemma2:9b-instruct-q8_0", "gemma2", "9b", "Q8_0"),
        ("llama3.1:8b-instruct-fp16", "llama3.1", "8b", "F16"),
        ("qwen3:30b", "qwen3", "30b-a3b", "Q4_K_M"),
        ("gpt-oss:20b", "gpt-oss", "20b", "MXFP4_MOE"),
        ("mixtral:8x7b", "mixtral", "8x7b", "Q4_0"),
        ("QWEN2.5:7B", "qwen2.5", "7b", "Q4_K_M"),
    ],
)
def test_tags_resolve_as_typed(typed: str, family: str, size: str, quant: str) -> None:
    entry, chosen, _ = load_catalog().resolve(typed)
    assert (entry.family, entry.size, chosen) == (family, size, quant)


def test_unknown_tags_say_what_is_known() -> None:
    with pytest.raises(UnknownModel, match="not in llmdeck's catalog"):
        load_catalog().resolve("no-such-model:7b")
    with pytest.raises(UnknownModel, match=r"known: .*8b"):
        load_catalog().resolve("llama3.1:9b")


def test_an_installed_model_is_known_under_each_of_its_names() -> None:
    # Ollama lists what `ollama pull llama3.1` installed as llama3.1:latest; the catalog lists it
    # as llama3.1:8b, its default quant, the same model as the instruct-q4_K_M tag.
    installed = installed_matcher(["llama3.1:latest", "llama3.2", "me/custom:1"])
    assert installed("llama3.1:8b") and installed("llama3.1:8b-instruct-q4_K_M")
    assert installed("llama3.2:3b")
    assert not installed("llama3.1:8b-instruct-q8_0")  # another quant of the same size
    assert not installed("llama3.1:70b") and not installed("llama3.2:1b")
    assert installed("me/custom:1") and not installed("me/custom:2")  # outside the catalog: by name
    # The long tag of the default quant, which the catalog keeps in its short form.
    assert installed_matcher(["llama3.1:8b-instruct-q4_K_M"])("llama3.1:8b")
    # Tags the library does not publish name other models, whatever size they say.
    for other in ("llama3.1:8b-text-q4_K_M", "llama3.1:8b-mytune", "qwen2.5:7b-base"):
        assert not installed_matcher([other])("llama3.1:8b") and not installed_matcher([other])("qwen2.5:7b")
        assert installed_matcher([other])(other)
