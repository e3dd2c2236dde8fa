"""Widgets whose change of size costs one layout of the screen, not two."""

from __future__ import annotations

from textual.geometry import Size
from textual.widget import Widget


class LaidOutOnce(Widget):
    """After a layout, Textual hands each resized widget its new virtual size through a reactive
    that asks for another layout of the whole screen; for these widgets that second layout
    places nothing differently (scrolling to the end is done in the first, and a scrollbar that
    comes or goes still asks for its own). Measured while a reply streamed: every growth of the
    reply laid the screen out twice, and the layouts were half of the app's work in a burst."""

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        return super()._size_updated(size, virtual_size, container_size, layout=False)
