"""A scrollable widget that keeps still when the screen around it is laid out again."""

from __future__ import annotations

from textual.geometry import Size
from textual.scroll_view import ScrollView


class SteadyScrollView(ScrollView):
    """Textual's ScrollView compares the layout's idea of its virtual size (its visible size)
    with its own (the content's), which differ whenever it scrolls, so every layout of the screen
    repainted its scrollbars. While a reply streams the screen is laid out for each new line, and
    a scrollbar in the left column widened each repaint to the whole screen (measured: every
    widget drawn ~13 times a second). The size and the container are what matter here."""

    _steady_container: Size | None = None

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        if size == self._size and container_size == self._steady_container:
            return False
        self._steady_container = container_size
        return super()._size_updated(size, virtual_size, container_size, layout)
