"""The main screen, whose updates draw only the rows that changed, each change in one update.

Textual's compositor, for every screen update, draws each widget that overlaps the changed area
in full: the screen, the panes and the chat's containers render all their rows (from cache, but
each row is filtered, cut and compared) to repaint one line of a reply. Measured while a reply
streamed at 100 tokens/s: ~13 widgets and ~275 rows drawn per update, to change 1 to 4 rows.
Here each overlapping widget draws only the rows of the changed area, and a widget wholly hidden
there by widgets in front draws nothing; full updates (a layout, a resize, a screenshot) are
unchanged.

And a layout's update also draws what the layout itself changed: scrolling the transcript to its
end moves its scrollbar, which Textual drew in an update of its own (30 rows, ~5 ms, after every
growth of a streaming reply).
"""

from __future__ import annotations

from collections.abc import Iterable

from textual._compositor import Compositor
from textual.geometry import Region
from textual.screen import Screen
from textual.strip import Strip


class RowCroppedCompositor(Compositor):
    def _get_renders(self, crop: Region | None = None) -> Iterable[tuple[Region, Region, list[Strip]]]:
        if crop is None:
            yield from super()._get_renders(crop)
            return
        top, bottom = crop.y, crop.bottom
        overlaps_crop = crop.overlaps
        drawn: list[Region] = []  # the crop's cells drawn so far, by widgets in front
        # In the base class's order (front to back): the first strip drawn on a cell wins.
        for widget, (region, clip) in self.visible_widgets.items():
            if not overlaps_crop(clip):
                continue
            x, y, width, height = region.intersection(clip)
            first, last = max(y, top), min(y + height, bottom)
            if not width or last <= first:
                continue
            rows = Region(x, first, width, last - first)
            # A widget hidden behind others within the crop draws nothing the update shows (the
            # screen and the panes behind the chat's reply, most updates).
            shown = rows.intersection(crop)
            if _covered(shown, drawn):
                continue
            drawn.append(shown)
            # The caller places the strips in region ∩ clip: handing it the rows as the clip
            # puts them where they belong.
            yield region, rows, widget.render_lines(rows.translate((-region.x, -region.y)))


def _covered(area: Region, drawn: list[Region]) -> bool:
    """Whether every cell of `area` lies in one of the `drawn` regions."""
    for row in area.line_range:
        spans = sorted((region.x, region.right) for region in drawn if region.y <= row < region.bottom)
        reached = area.x
        for left, right in spans:
            if left > reached:
                break
            reached = max(reached, right)
        if reached < area.right:
            return False
    return True


class DeckScreen(Screen[None]):
    def __init__(self, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._compositor = RowCroppedCompositor()

    def _compositor_refresh(self) -> None:
        # Widgets asked for a repaint since this update's widgets were gathered (during the
        # layout, or after): drawn now rather than in an update of their own. Their own request
        # arrives later and finds nothing left to draw.
        compositor = self._compositor
        waiting = {widget for widget in compositor.visible_widgets if widget._repaint_regions}
        if waiting:
            compositor.update_widgets(waiting)
        super()._compositor_refresh()
