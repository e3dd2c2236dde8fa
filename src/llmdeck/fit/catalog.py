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
    # What a published tag reads before its quant (`llama3.1:8b-instruct-` of `…-q8_0`), lower-cased:
    # the library publishes that stem with every quant of the model, the default one too, whose
    # tag the catalog keeps in its short form (`llama3.1:8b`).
    _stems: dict[str, CatalogEntry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        published: dict[str, tuple[CatalogEntry, str, str]] = {}
        stems: dict[str, CatalogEntry] = {}
        for entry in self.entries:
            for quant, known in entry.tags.items():
                tag = str(known["tag"])
                published.setdefault(tag.lower(), (entry, quant, tag))
                suffix = _QUANT_SUFFIX.search(tag)
                if suffix is not None:
                    stems.setdefault(tag[: suffix.start(1)].lower(), entry)
        object.__setattr__(self, "_published", published)
        object.__setattr__(self, "_stems", stems)

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
        """(family, size, quantization) of a tag the library publishes, or of its short forms:
        `llama3.1`, `llama3.1:latest`, `llama3.1:8b` and `llama3.1:8b-instruct-q4_K_M` are one
        model. None for any other tag: `resolve` reads only the size out of one it does not know,
        but `llama3.1:8b-text-q4_K_M` (the base model) or a model made with `ollama create`
        under a library name is another model."""
        text = tag.strip().lower()
        known = self._published.get(text)
        if known is not None:
            return known[0].family, known[0].size, known[1]
        suffix = _QUANT_SUFFIX.search(text)
        if suffix is not None and (stemmed := self._stems.get(text[: suffix.start(1)])) is not None:
            quant = _quant_suffix(text)
            return (stemmed.family, stemmed.size, quant) if quant in stemmed.tags else None
        family, _, rest = text.partition(":")
        if family not in self.latest:
            return None
        size = self.latest[family] if rest in ("", "latest") else rest
        entry = next((e for e in self.entries if (e.family, e.size) == (family, size)), None)
        return (family, size, entry.default_quant) if entry is not None else None

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


_QUANT_SUFFIX = re.compile(r"(?:^|[-:])(q\d_k_[sml]|q\d_k|q\d_\d|fp16|f16|bf16|mxfp4)$", re.IGNORECASE)


def _quant_suffix(rest: str) -> str | None:
    match = _QUANT_SUFFIX.search(rest)
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
