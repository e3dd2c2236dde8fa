"""Sparklines: a short history drawn with block characters, one character per sample."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Iterable[float | None], maximum: float | None = None) -> str:
    """One bar per value, scaled to `maximum` (default: the largest value); None draws a gap.

    A fixed maximum (a GPU's total VRAM) keeps the bars comparable over time; without one the
    history fills the height, which suits a rate with no natural ceiling.
    """
    samples = list(values)
    present = [value for value in samples if value is not None]
    top = maximum if maximum is not None else max(present, default=0.0)
    bars = []
    for value in samples:
        if value is None:
            bars.append(" ")
        elif top <= 0:
            bars.append(BARS[0])
        else:
            level = round(max(0.0, min(value / top, 1.0)) * (len(BARS) - 1))
            bars.append(BARS[level])
    return "".join(bars)


class History:
    """The last `length` samples of one series."""

    def __init__(self, length: int) -> None:
        self._values: deque[float | None] = deque(maxlen=length)

    def add(self, value: float | None) -> None:
        self._values.append(value)

    def __iter__(self) -> Iterator[float | None]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def draw(self, maximum: float | None = None) -> str:
        """Always the full width, newest on the right: what follows on the line stays in place."""
        return sparkline(self._values, maximum).rjust(self._values.maxlen or 0)
