"""Widgets whose change of size costs one layout and one repaint of the screen, not two of each."""

from __future__ import annotations

from textual.geometry import Size
from textual.widget import Widget


class LaidOutOnce(Widget):
    """After a layout, Textual hands each resized widget its new virtual size through a reactive
    that asks for another layout of the whole screen; for these widgets that second layout
    places nothing differently (scrolling to the end is done in the first, and a scrollbar that
    comes or goes still asks for its own). Measured while a reply streamed: every growth of the
    reply laid the screen out twice, and the layouts were half of the app's work in a burst.

    A resized widget is also marked for a full repaint at the next screen update, though the
    layout that resized it has just repainted all of it (its old and new regions both changed).
    While a reply streams that next update is the next frame: the whole visible reply was
    repainted twice per growth (measured: ~11 ms a time, 2 a second at 100 tokens/s)."""

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        resized = self._size != size
        changed = super()._size_updated(size, virtual_size, container_size, layout=False)
        if resized:
            # Its style cache stays cleared (its lines are drawn again at the new size); only the
            # second repaint of the screen region is dropped.
            self._repaint_regions.clear()
        return changed
