"""What removing a model frees on disk.

Ollama deletes a model's manifest and then every blob no remaining manifest names (its
`server/images.go` `deleteUnusedLayers`): layers shared with another model stay. So the space
freed is the size of the blobs this manifest names that no other manifest in the store names.
"""

from __future__ import annotations

import os
from pathlib import Path

from llmdeck.store.layout import DEFAULT_NAMESPACE, DEFAULT_REGISTRY, read_store

DEFAULT_TAG = "latest"


def canonical_name(name: str) -> str:
    """A model name as the store's manifest paths spell it: `llama3.2` -> `llama3.2:latest`,
    `registry.ollama.ai/library/qwen2.5:14b` -> `qwen2.5:14b` (the form `ollama list` shows)."""
    text = name.strip()
    path, colon, tag = text.rpartition(":")
    # A colon inside the path part is a host's port (`myhost:5000/ns/model`), not a tag.
    if not colon or "/" in tag:
        path, tag = text, DEFAULT_TAG
    parts = path.split("/")
    if len(parts) >= 3 and parts[0] == DEFAULT_REGISTRY:
        parts = parts[1:]
    if len(parts) == 2 and parts[0] == DEFAULT_NAMESPACE:
        parts = parts[1:]
    return f"{'/'.join(parts)}:{tag}".lower()


def bytes_freed(store_root: Path, model_name: str) -> int | None:
    """Bytes that removing `model_name` would delete from `store_root`; None when unknown.

    Unknown: the store cannot be read, the model has no manifest there, or some manifest is
    unreadable (it may name the same blobs, and then they would stay).
    """
    contents = read_store(store_root)
    if not contents.exists or contents.unreadable:
        return None
    wanted = canonical_name(model_name)
    target = next((model for model in contents.models if canonical_name(model.name) == wanted), None)
    if target is None:
        return None
    kept = {
        _identity(blob)
        for model in contents.models
        if model.manifest != target.manifest
        for blob in model.blobs
    }
    freed = 0
    counted: set[str] = set()
    for blob in target.blobs:
        identity = _identity(blob)
        if identity in kept or identity in counted or blob in target.missing_blobs:
            continue
        counted.add(identity)
        try:
            freed += blob.stat().st_size
        except OSError:
            return None
    return freed


def _identity(blob: Path) -> str:
    # `sha256-<hex>` and the pre-2024 `sha256:<hex>` are the same blob.
    return os.path.normcase(blob.name.replace(":", "-", 1))
