"""Folders for llmdeck's own files (state, history, logs): readable by the user only."""

from __future__ import annotations

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
