"""The built-in catalog of Ollama library models (a data file), and tag resolution.

A user types tags as the library names them: `llama3.1`, `llama3.1:70b`,
`qwen2.5:32b-instruct-q4_K_M`, `gemma2:9b-instruct-q8_0`. The family and size pick the
architecture; a quantization at the end of the tag picks the file type, else the size's default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from llmdeck.fit.quant import FILE_TYPE_IDS, file_type_name
from llmdeck.fit.spec import ModelSpec
from llmdeck.fit.synth import Architecture, synthesize


class UnknownModel(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    family: str
    size: str
    architecture: Architecture
    parameters: int
    active_parameters: int | None
    default_quant: str
    tags: dict[str, dict[str, Any]]  # quantization -> {"tag", "bytes"?, "size"?}
    embedding_type: str | None
    vision_bytes: int

    def tag_for(self, quant: str) -> str:
        known = self.tags.get(quant)
        if known:
            return str(known["tag"])
        return f"{self.family}:{self.size}-{quant.lower().replace('_k_', '_K_').replace('_k', '_K')}"

    def spec(self, quant: str | None = None, name: str | None = None) -> ModelSpec:
        chosen = quant or self.default_quant
        return synthesize(
            self.architecture,
            chosen,
            name or self.tag_for(chosen),
            self.parameters,
            embedding_type=self.embedding_type,
            vision_bytes=self.vision_bytes,
        )


@dataclass(frozen=True, slots=True)
class Catalog:
    entries: tuple[CatalogEntry, ...]
    latest: dict[str, str]  # family -> size of its :latest
    # Every published tag, lower-cased -> (entry, quantization, tag): the first entry naming a tag
    # wins, as a scan in catalog order would find it.
    _published: dict[str, tuple[CatalogEntry, str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        published: dict[str, tuple[CatalogEntry, str, str]] = {}
        for entry in self.entries:
            for quant, known in entry.tags.items():
                published.setdefault(str(known["tag"]).lower(), (entry, quant, str(known["tag"])))
        object.__setattr__(self, "_published", published)

    def families(self) -> list[str]:
        return list(self.latest)

    def resolve(self, tag: str) -> tuple[CatalogEntry, str, str]:
        """(entry, quantization, canonical tag) for what a user typed."""
        text = tag.strip()
        known = self._published.get(text.lower())
        if known is not None:
            return known
        family, _, rest = text.partition(":")
        family = family.lower()
        if family not in self.latest:
            raise UnknownModel(f"{tag!r} is not in llmdeck's catalog of Ollama library models")
        if rest in ("", "latest"):
            entry = self._entry(family, self.latest[family])
            return entry, entry.default_quant, entry.tag_for(entry.default_quant)
        size = rest.split("-")[0].lower()
        entry = self._entry(family, size)
        return entry, _quant_suffix(rest) or entry.default_quant, text

    def identity(self, tag: str) -> tuple[str, str, str] | None:
        """(family, size, quantization) a tag names, or None outside the catalog: `llama3.1`,
        `llama3.1:latest`, `llama3.1:8b` and `llama3.1:8b-instruct-q4_K_M` are one model."""
        try:
            entry, quant, _ = self.resolve(tag)
        except UnknownModel:
            return None
        return entry.family, entry.size, quant

    def _entry(self, family: str, size: str) -> CatalogEntry:
        candidates = [e for e in self.entries if e.family == family]
        for entry in candidates:
            if entry.size == size:
                return entry
        prefixed = [e for e in candidates if e.size.split("-")[0] == size]
        if len(prefixed) == 1:
            return prefixed[0]
        sizes = ", ".join(e.size for e in candidates)
        raise UnknownModel(f"{family} has no size {size!r} in llmdeck's catalog (known: {sizes})")


def _quant_suffix(rest: str) -> str | None:
    match = re.search(r"(?:^|-)(q\d_k_[sml]|q\d_k|q\d_\d|fp16|f16|bf16|mxfp4)$", rest, re.IGNORECASE)
    if not match:
        return None
    try:
        return file_type_name(match.group(1))
    except ValueError:
        return None


def installed_matcher(installed: Iterable[str]) -> Callable[[str], bool]:
    """Whether a catalog tag is installed under any of its names (Ollama lists `llama3.1:latest`
    for what the catalog calls `llama3.1:8b`)."""
    names = set(installed)
    catalog = load_catalog()
    identities = {identity for name in names if (identity := catalog.identity(name)) is not None}
    return lambda tag: tag in names or catalog.identity(tag) in identities


@cache
def load_catalog() -> Catalog:
    raw = json.loads((resources.files("llmdeck.fit") / "data" / "catalog.json").read_text(encoding="utf-8"))
    entries = []
    latest = {}
    for family, data in raw["families"].items():
        latest[family] = data["default_size"]
        for size, item in data["sizes"].items():
            fields = dict(item["architecture"])
            entries.append(
                CatalogEntry(
                    family=family,
                    size=size,
                    architecture=Architecture(**fields),
                    parameters=int(item["parameters"]),
                    active_parameters=item.get("active_parameters"),
                    default_quant=item["default_quant"],
                    tags={quant: tag for quant, tag in item["tags"].items() if quant in FILE_TYPE_IDS},
                    embedding_type=item.get("embedding_type"),
                    vision_bytes=int(item.get("vision_bytes", 0)),
                )
            )
    return Catalog(tuple(entries), latest)
