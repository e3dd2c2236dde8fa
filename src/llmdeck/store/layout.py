"""What an Ollama models directory holds: manifests, the blobs they name, and the leftovers.

Layout (Ollama's `manifest/paths.go`): `manifests/<host>/<namespace>/<model>/<tag>` holds a JSON
manifest whose layers name blobs `sha256:<hex>`, stored as `blobs/sha256-<hex>`. The layer of
media type `application/vnd.ollama.image.model` is the GGUF with the weights.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

MODEL_LAYER = "application/vnd.ollama.image.model"
PROJECTOR_LAYER = "application/vnd.ollama.image.projector"
DEFAULT_REGISTRY = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
_BLOB_NAME = re.compile(r"^sha256[-:]([0-9a-fA-F]{64})$")


@dataclass(frozen=True, slots=True)
class StoredModel:
    name: str  # as `ollama list` shows it: "llama3.2:latest", "user/model:tag", "hf.co/org/repo:tag"
    manifest: Path
    size_bytes: int  # the sum of the manifest's layers, as /api/tags reports it
    model_blob: Path | None
    blobs: tuple[Path, ...]
    missing_blobs: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class StoreContents:
    root: Path
    exists: bool
    models: tuple[StoredModel, ...] = ()
    orphan_blobs: tuple[Path, ...] = ()
    partial_files: tuple[Path, ...] = ()
    unreadable: tuple[str, ...] = field(default=())  # manifests that are not JSON manifests

    @property
    def orphan_bytes(self) -> int:
        return sum(_size(path) for path in self.orphan_blobs)

    @property
    def partial_bytes(self) -> int:
        return sum(_size(path) for path in self.partial_files)


def blob_path(root: Path, digest: str) -> Path:
    return root / "blobs" / digest.replace(":", "-", 1)


def model_name(relative: Path) -> str:
    """`registry.ollama.ai/library/llama3.2/latest` -> `llama3.2:latest`."""
    parts = relative.parts
    if len(parts) < 4:
        return "/".join(parts)
    host, namespace, model, tag = parts[0], "/".join(parts[1:-2]), parts[-2], parts[-1]
    if host == DEFAULT_REGISTRY and namespace == DEFAULT_NAMESPACE:
        return f"{model}:{tag}"
    if host == DEFAULT_REGISTRY:
        return f"{namespace}/{model}:{tag}"
    return f"{host}/{namespace}/{model}:{tag}"


def read_store(root: Path) -> StoreContents:
    if not root.is_dir():
        return StoreContents(root=root, exists=False)
    manifests_dir = root / "manifests"
    blobs_dir = root / "blobs"
    models: list[StoredModel] = []
    unreadable: list[str] = []
    referenced: set[Path] = set()
    if manifests_dir.is_dir():
        for manifest in sorted(p for p in manifests_dir.rglob("*") if p.is_file()):
            relative = manifest.relative_to(manifests_dir)
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
                layers = [*data.get("layers", []), data["config"]] if data.get("config") else data["layers"]
                entries = [
                    (str(layer["digest"]), int(layer.get("size", 0)), layer.get("mediaType"))
                    for layer in layers
                ]
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                unreadable.append(str(relative))
                continue
            blobs = tuple(blob_path(root, digest) for digest, _, _ in entries)
            referenced.update(blobs)
            model_blob = next(
                (blob_path(root, digest) for digest, _, kind in entries if kind == MODEL_LAYER), None
            )
            models.append(
                StoredModel(
                    name=model_name(relative),
                    manifest=manifest,
                    size_bytes=sum(size for _, size, _ in entries),
                    model_blob=model_blob,
                    blobs=blobs,
                    missing_blobs=tuple(blob for blob in blobs if not blob.is_file()),
                )
            )
    orphans: list[Path] = []
    partials: list[Path] = []
    if blobs_dir.is_dir():
        for blob in sorted(blobs_dir.iterdir()):
            if "-partial" in blob.name:
                partials.append(blob)
            elif _BLOB_NAME.match(blob.name) and blob not in referenced and blob.is_file():
                orphans.append(blob)
    return StoreContents(
        root=root,
        exists=True,
        models=tuple(models),
        orphan_blobs=tuple(orphans),
        partial_files=tuple(partials),
        unreadable=tuple(unreadable),
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
