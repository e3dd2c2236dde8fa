"""What an Ollama models directory holds: manifests, the blobs they name, and the leftovers.

Layout (Ollama's `manifest/paths.go`): `manifests/<host>/<namespace>/<model>/<tag>` holds a JSON
manifest whose layers name blobs `sha256:<hex>`, stored as `blobs/sha256-<hex>`. The layer of
media type `application/vnd.ollama.image.model` is the GGUF with the weights.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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
    projector_blobs: tuple[Path, ...] = ()  # a vision projector in a file of its own (llava's mmproj)


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

    @property
    def partial_downloads(self) -> int:
        """Unfinished pulls: one per blob, whatever the number of `-partial-N` chunk files."""
        return len({path.name.split("-partial")[0] for path in self.partial_files})


def blob_path(root: Path, digest: str) -> Path:
    """Where a blob is: `sha256-<hex>`, or `sha256:<hex>` as Ollama named them before March 2024."""
    current = root / "blobs" / digest.replace(":", "-", 1)
    legacy = root / "blobs" / digest.replace("-", ":", 1)
    return legacy if not is_file(current) and is_file(legacy) else current


def is_dir(path: Path) -> bool:
    """Like `Path.is_dir`, but a folder we may not enter (another user's home) is just not one."""
    try:
        return path.is_dir()
    except OSError:
        return False


def nearest_existing(path: Path) -> Path:
    """The folder itself, or its closest ancestor that exists (where it would be created)."""
    existing = path
    while not is_dir(existing) and existing != existing.parent:
        existing = existing.parent
    return existing


def free_bytes(path: Path) -> int | None:
    """Free space on the filesystem that holds (or would hold) `path`."""
    try:
        return shutil.disk_usage(nearest_existing(path)).free
    except OSError:
        return None


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def manifest_files(manifests_dir: Path) -> tuple[list[Path], list[str]]:
    """Manifest files exactly four levels down (as Ollama reads them), and folders we could not read."""
    found: list[Path] = []
    unreadable: list[str] = []

    def note(error: OSError) -> None:
        unreadable.append(str(error.filename or manifests_dir))

    for folder, folders, files in os.walk(manifests_dir, onerror=note):
        folders[:] = [name for name in folders if not name.startswith(".")]
        depth = len(Path(folder).relative_to(manifests_dir).parts)
        if depth == 3:
            found += [Path(folder) / name for name in files if not name.startswith(".")]
    return sorted(found), unreadable


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
    if not is_dir(root):
        try:
            root.stat()
        except PermissionError:
            return StoreContents(root=root, exists=True, unreadable=(str(root),))
        except OSError:
            pass
        return StoreContents(root=root, exists=False)
    manifests_dir = root / "manifests"
    blobs_dir = root / "blobs"
    models: list[StoredModel] = []
    unreadable: list[str] = []
    referenced: set[Path] = set()
    if is_dir(manifests_dir):
        manifests, unreadable_folders = manifest_files(manifests_dir)
        unreadable += unreadable_folders
        for manifest in manifests:
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
            referenced.update(root / "blobs" / digest.replace("-", ":", 1) for digest, _, _ in entries)
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
                    missing_blobs=tuple(blob for blob in blobs if not is_file(blob)),
                    projector_blobs=tuple(
                        blob_path(root, digest) for digest, _, kind in entries if kind == PROJECTOR_LAYER
                    ),
                )
            )
    orphans: list[Path] = []
    partials: list[Path] = []
    try:
        blob_files = sorted(blobs_dir.iterdir()) if is_dir(blobs_dir) else []
    except OSError as error:
        unreadable.append(f"{blobs_dir} ({error.strerror})")
        blob_files = []
    for blob in blob_files:
        if "-partial" in blob.name:
            partials.append(blob)
        elif _BLOB_NAME.match(blob.name) and blob not in referenced and is_file(blob):
            orphans.append(blob)
    if unreadable:
        # A manifest we could not read may well name these blobs: never call them orphans then.
        orphans = []
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
