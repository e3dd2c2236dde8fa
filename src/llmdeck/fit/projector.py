"""A vision projector kept in its own file (llava's `mmproj`), which Ollama loads beside the model.

Ollama reserves its weights on the first GPU before it places any layer, so a plan without them
promises layers that will not fit. `/api/show` reports the model's tensors but not the
projector's: its size comes from the file itself when this machine can read it (blobs are named
by their sha256, so a file of that name holds those bytes), otherwise from `/api/tags`, whose size
counts every blob of the model.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from llmdeck.fit.spec import ModelSpec


def projector_paths(modelfile: str) -> list[Path]:
    """The projector files of a modelfile as `/api/show` writes it: the model's own blob is the
    first `FROM` line, each projector a further `FROM` line after any `ADAPTER` lines."""
    froms = []
    for line in modelfile.splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            froms.append(rest.strip())
    # The first is the model's, whatever it names (a safetensors model's is not a blob path).
    return [Path(path) for path in froms[1:] if "sha256-" in path]


def file_bytes(paths: Sequence[Path]) -> int | None:
    """The files' total size, or None when one of them cannot be read here."""
    total = 0
    for path in paths:
        try:
            status = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(status.st_mode):
            return None  # a folder of that name is not the blob: its size says nothing
        total += status.st_size
    return total


def measure_projector(spec: ModelSpec, paths: Sequence[Path], installed_bytes: int | None) -> int | None:
    """Bytes of the model's separate projector: its files' size when they can be read here, else
    `/api/tags`' size (`installed_bytes`) less the weights; None when it has none (or none can be
    told). Blocks on the file system (a stat per file): call it off the UI thread."""
    if not paths:
        return None
    on_disk = file_bytes(paths)
    if on_disk is not None:
        return on_disk
    if installed_bytes is None:
        return None
    # The model's blob is its weights plus a header (the tokenizer: up to ~10 MB): the estimate is
    # that much too high, against projectors of 0.3-1 GB.
    rest = installed_bytes - spec.file_bytes
    return rest if rest > 0 else None


def with_projector(spec: ModelSpec, projector_bytes: int | None) -> ModelSpec:
    if not projector_bytes:
        return spec
    return dataclasses.replace(spec, projector_bytes=spec.projector_bytes + projector_bytes)
