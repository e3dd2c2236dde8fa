"""A Markdown reply that may still be arriving, drawn as lines (Textual's line API).

Why not Textual's `Markdown` widget: it makes a widget of every block (a table, one per cell),
and every refresh re-arranges all of them, so a long reply slows the whole app down and each
update costs more than the last (measured: 10,000 tokens offered at 1,000/s took 188 s, see
docs/reliability.md). Here a reply is one widget whatever its length. Text is buffered and
drawn at most `FRAME_S` apart; finished blocks are rendered once, the open one per frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.style import Style
from textual.geometry import Region, Size
from textual.strip import Strip

from llmdeck.ui.laid_out_once import LaidOutOnce

# markdown-it, Rich's Markdown and Pygments are not loaded at start-up: the app warms them up in a
# thread once the model list shows (markdown_blocks.warm_up), or the first reply loads them.
if TYPE_CHECKING:
    from llmdeck.ui.markdown_blocks import Block, Line, OpenFence

# Fifteen frames a second: a token is on screen within 67 ms of arriving, plus one frame's work (the
# target is 100 ms); each frame costs a repaint of the lines that changed, so fewer is lighter.
FRAME_S = 1 / 15

# While a reply streams its height grows this many lines at a time, the new ones blank until text
# fills them: a change of height lays out the whole screen and repaints the transcript as it
# scrolls (measured: ~15 ms a time here), whereas filling a reserved line repaints that line.
STREAMING_HEIGHT_STEP = 8
# In a burst a frame may take at most this share of the time: it costs tens of milliseconds (new
# blocks, a layout), and at 15 a second drawing would starve the reading of the reply.
FRAME_SHARE = 0.3
# A burst: more pieces than this waiting for a frame (~750 tokens/s). Fewer, and the next frame
# comes on time whatever the last one cost: after a burst, the costly frame that caught up
# would otherwise hold the next few tokens back (measured: 400 ms).
BURST_PIECES = 50

_console: Console | None = None


def _shared_console() -> Console:
    global _console
    if _console is None:
        from llmdeck.ui.markdown_blocks import render_console

        _console = render_console(80)
    return _console


class ReplyView(LaidOutOnce):
    """A reply's Markdown; `append` while it streams, `finish` when it ends."""

    DEFAULT_CSS = """
    ReplyView {
        height: auto;
    }
    """

    def __init__(self, text: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._parts: list[str] = []
        from llmdeck.ui.markdown_blocks import BlockCutter

        self._cutter = BlockCutter()
        self._blocks: list[Block] = []  # finished blocks, rendered into _finished_lines
        self._finished_lines: list[Strip] = []
        self._rendered_blocks = 0
        self._open_lines: list[Strip] = []
        self._plain_cache: tuple[int, list[Strip]] = (0, [])  # (source lines done, their lines)
        self._fence: OpenFence[Strip] | None = None  # the open block's rows, when it is a long code fence
        self._width = 0
        self._references_known = 0
        self._complete = False
        self._keeping_room = False  # complete, but the room kept while streaming not yet given back
        self._frame_pending = False
        self._frame_cost = 0.0  # seconds the last frame took
        self._frame_started = 0.0  # when it began (perf_counter)
        self._pieces_waiting = 0  # appended since the last frame
        self._dirty = False
        self.frames = 0  # how many times the reply was redrawn while text arrived
        self._base_style: Style | None = None
        # Called after each frame: other live figures redrawn in the same screen update.
        self.after_frame: Callable[[], None] | None = None
        if text:
            self.append(text)
            self._complete = True

    @property
    def source(self) -> str:
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def line_count(self) -> int:
        separator = 1 if self._finished_lines and self._open_lines else 0
        return len(self._finished_lines) + separator + len(self._open_lines)

    @property
    def height_shown(self) -> int:
        """Lines the widget takes: while it streams, room for the next few is kept."""
        lines = self.line_count
        if not lines or (self._complete and not self._keeping_room):
            return lines
        return -(-lines // STREAMING_HEIGHT_STEP) * STREAMING_HEIGHT_STEP

    def lines(self) -> list[Strip]:
        """Every line as drawn at the current width (for tests and benchmarks)."""
        return [self._line(y) for y in range(self.line_count)]

    def append(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        self._cutter.feed(text)
        self._dirty = True
        self._pieces_waiting += 1
        if not self._frame_pending and self.is_mounted:
            self._frame_pending = True
            self.set_timer(FRAME_S, self._frame)

    def finish(self) -> None:
        """The reply is complete: draw it all, the last block styled too, now.

        The room kept while it streamed is given back only once that is on screen: a change of
        height lays out the whole screen (measured: 30-100 ms here), which held up the last words.
        """
        height_before = self.height_shown  # with the room kept while it streamed
        self._complete = True
        self._keeping_room = self.is_mounted and height_before > 0
        self._dirty = True
        self._frame(height_before)
        if self._keeping_room:
            self.call_after_refresh(self._give_room_back)

    def _give_room_back(self) -> None:
        height_before = self.height_shown
        self._keeping_room = False
        if self.height_shown != height_before:
            self.refresh(layout=True)

    def _frame(self, height_before: int | None = None) -> None:
        self._frame_pending = False
        if not self._dirty or not self._width:
            return
        started = time.perf_counter()
        if height_before is None and self._pieces_waiting > BURST_PIECES:
            wait = self._frame_started + self._frame_cost / FRAME_SHARE - started
            if wait > 0:
                self._frame_pending = True
                self.set_timer(wait, self._frame)
                return
        self.frames += 1
        self._frame_started = started
        self._pieces_waiting = 0
        if height_before is None:
            height_before = self.height_shown
        redraw_from = len(self._finished_lines)
        before = [self._line(y) for y in range(redraw_from, self.line_count)]
        everything_redrawn = self._draw(self._width)
        self._frame_cost = time.perf_counter() - started
        resized = self.height_shown != height_before
        if everything_redrawn:
            self.refresh(layout=resized)
        else:
            # Only the lines that differ are repainted, even when the reply grows: most frames
            # add to the last line or two of the open block, and every repainted line costs
            # Textual a styled render.
            first_changed = redraw_from
            for old, new in zip(
                before, (self._line(y) for y in range(redraw_from, self.line_count)), strict=False
            ):
                if old != new:
                    break
                first_changed += 1
            end = max(redraw_from + len(before), self.line_count)
            if end > first_changed:
                width = max(self.size.width, self._width)
                self.refresh(Region(0, first_changed, width, end - first_changed), layout=resized)
            elif resized:
                self.refresh(layout=True)
        if self.after_frame is not None:
            self.after_frame()

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        # A change of height leaves every drawn row as it was (the frame marks those it changed),
        # but Textual forgets them all: after each growth of a streaming reply its whole visible
        # part was styled again (~30 rows here). Kept when no border or padding above or below
        # makes a row depend on the height.
        cache = self._styles_cache
        kept: dict[int, Strip] = {}
        gutter = self.styles.gutter
        if size.width == self._size.width and not gutter.top and not gutter.bottom:
            dirty = cache._dirty_lines
            kept = {y: strip for y, strip in cache._cache.items() if y < size.height and y not in dirty}
        changed = super()._size_updated(size, virtual_size, container_size, layout)
        if kept:
            cache._cache.update(kept)
            cache._dirty_lines.difference_update(kept)
        return changed

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if width != self._width or self._dirty:
            self._draw(width)
        return self.height_shown

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        if width != self._width and width > 0:
            self._draw(width)
        if self._base_style is None:
            # Working out a widget's style walks its CSS: far dearer than drawing a line.
            self._base_style = self.rich_style
        if y >= self.line_count:
            return Strip.blank(width, self._base_style)
        return self._line(y).adjust_cell_length(width).apply_style(self._base_style)

    def notify_style_update(self) -> None:
        self._base_style = None
        super().notify_style_update()

    def _line(self, y: int) -> Strip:
        finished = len(self._finished_lines)
        if y < finished:
            return self._finished_lines[y]
        offset = y - finished - (1 if finished and self._open_lines else 0)
        return self._open_lines[offset] if offset >= 0 else Strip([])

    def draw_ahead(self, width: int, console: Console) -> None:
        """Draw a complete reply not yet on screen, in a thread (with a console of its own): laid
        out at `width`, it is not drawn again on the event loop. A restored chat's long replies
        held up the first screen (measured: 0.25 s at start for a 5,000-token reply)."""
        self._draw(width, console)

    def _draw(self, width: int, console: Console | None = None) -> bool:
        """Render what changed at `width`; True when every line was drawn again."""
        from llmdeck.ui.markdown_blocks import render_block

        console = console or _shared_console()
        self._blocks.extend(self._cutter.take_finished())
        references = self._cutter.references
        everything = False
        # A new link reference definition may resolve a link in a block already drawn (rare in
        # replies): draw them all again, as after a resize.
        if width != self._width or len(references) != self._references_known:
            self._width = width
            self._references_known = len(references)
            self._finished_lines = []
            self._rendered_blocks = 0
            self._plain_cache = (0, [])
            everything = True
        for block in self._blocks[self._rendered_blocks :]:
            self._add_finished(render_block(block, console, width, references))
            block.tokens = None  # a resize parses again; holding tokens would cost far more memory
        self._rendered_blocks = len(self._blocks)
        self._open_lines = self._render_open(console, width)
        self._dirty = False
        return everything

    def _add_finished(self, lines: list[Line]) -> None:
        if not lines:
            return
        if self._finished_lines:
            self._finished_lines.append(Strip([]))
        self._finished_lines.extend(Strip(line) for line in lines)

    def _render_open(self, console: Console, width: int) -> list[Strip]:
        from llmdeck.ui.markdown_blocks import (
            OPEN_BLOCK_STYLED_LIMIT,
            OpenFence,
            open_fence,
            render_block,
            render_plain,
        )

        source = self._cutter.open_source
        if not source.strip():
            return []
        fence = None if self._complete else open_fence(self._cutter.open_block())
        if fence is None:
            self._fence = None
        else:
            # A fence streams line by line: only its new lines are highlighted.
            language, code = fence
            if self._fence is None or (self._fence.language, self._fence.width) != (language, width):
                self._fence = OpenFence(language, width, Strip)
            if (rows := self._fence.draw(code, console)) is not None:
                return rows
        if self._complete or len(source) <= OPEN_BLOCK_STYLED_LIMIT:
            self._plain_cache = (0, [])
            return [Strip(line) for line in render_block(self._cutter.open_block(), console, width)]
        # A long open block: its complete source lines are wrapped once; only the last is redone.
        source_lines = source.split("\n")
        done, lines = self._plain_cache
        complete = len(source_lines) - 1
        if done > complete:
            done, lines = 0, []
        for text in source_lines[done:complete]:
            lines.extend(Strip(line) for line in render_plain(text or " ", console, width))
        self._plain_cache = (complete, lines)
        tail = source_lines[-1]
        return lines + [Strip(line) for line in render_plain(tail, console, width)] if tail else list(lines)
