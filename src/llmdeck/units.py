"""How figures are written on screen: every one with its unit."""

from __future__ import annotations

GIB = 1024**3


def gib(count: int | float) -> str:
    """Memory in binary units, as drivers and Ollama's logs count it."""
    return f"{count / GIB:.1f} GiB"


def decimal_size(count: int | float) -> str:
    """Size on disk in decimal units, as `ollama list` prints it, so the two can be compared."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
