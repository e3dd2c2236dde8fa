"""Folders for llmdeck's own files (state, history, logs): readable by the user only."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import suppress
from pathlib import Path


def make_private_folders(folder: Path) -> None:
    """Create `folder` and any missing parents with mode 0o700.

    The XDG spec asks for 0o700 on every folder created for state and data, and
    `mkdir(parents=True)` gives the folders above the last one the umask's mode instead.
    """
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        with suppress(FileExistsError):  # another llmdeck made it just now
            created.mkdir(mode=0o700)


def write_private_json(path: Path, data: object) -> None:
    """Replace `path` with `data` as JSON, atomically (a reader sees the old file or the new one),
    readable by the user only; its folders are made private. Raises OSError."""
    make_private_folders(path.parent)
    # mkstemp creates the file with mode 0o600.
    descriptor, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(data, file)
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
