"""What a screen update draws while a reply streams: the rows that changed, once.

Textual's compositor draws every widget that overlaps a change in full, and marks a resized widget
for a second full repaint after the layout that resized it; the main screen avoids both. These
tests pin what that buys (rows drawn per update, repaints per growth) and that the screen still
shows exactly what a full redraw would.
"""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from helpers import fast_settings, press_now, type_text, wait_until
from ollama_standin import OllamaStandIn, Reply
from textual._compositor import Compositor
from textual.geometry import Region
from textual.pilot import Pilot
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget

from llmdeck.hardware import StaticProbe
from llmdeck.ollama_api import OllamaService
from llmdeck.ui.app import LlmdeckApp, create_app
from llmdeck.ui.chat_pane import AssistantTurn, ChatPane, Transcript
from llmdeck.ui.cropped_screen import RowCroppedCompositor

PARAGRAPH = "Streaming words fill the transcript line after line, " * 3 + "\n\n"
LIST = "- one point\n- another point with more words in it\n\n"
CODE = "```python\nfor step in range(3):\n    print(step)\n```\n\n"
TEXT = "".join(random.Random(4).choice([PARAGRAPH, LIST, CODE]) for _ in range(40))


@dataclass
class Update:
    rows_drawn: int = 0
    laid_out: bool = False
    widgets_drawn: set[Widget] = field(default_factory=set)


@pytest.fixture
def updates(monkeypatch: pytest.MonkeyPatch) -> list[Update]:
    """Every screen update while a test runs: how many widget rows it drew, and if it was a layout."""
    seen: list[Update] = []
    current: list[Update] = []
    refresh, layout, render_lines = Screen._compositor_refresh, Screen._refresh_layout, Widget.render_lines

    def counted_refresh(screen: Screen[object]) -> None:
        current.append(Update())
        try:
            refresh(screen)
        finally:
            seen.append(current.pop())

    def counted_layout(screen: Screen[object], *args: object, **kwargs: object) -> None:
        layout(screen, *args, **kwargs)  # type: ignore[arg-type]
        if seen:
            seen[-1].laid_out = True

    def counted_render(widget: Widget, crop: Region) -> list[Strip]:
        if current:
            current[-1].rows_drawn += crop.height
            current[-1].widgets_drawn.add(widget)
        return render_lines(widget, crop)

    monkeypatch.setattr(Screen, "_compositor_refresh", counted_refresh)
    monkeypatch.setattr(Screen, "_refresh_layout", counted_layout)
    monkeypatch.setattr(Widget, "render_lines", counted_render)
    return seen


@asynccontextmanager
async def chatting(
    standin: OllamaStandIn, probe: StaticProbe, reply: Reply
) -> AsyncIterator[tuple[LlmdeckApp, Pilot[None], ChatPane]]:
    """A 120x40 app whose prompt "hi" has just been sent, to be answered with `reply`."""
    standin.replies.append(reply)
    app = create_app(OllamaService(standin.url), probe, fast_settings(standin.url))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: app.query_one("#models").row_count > 0)  # type: ignore[attr-defined]
        await type_text(pilot, "hi")
        await press_now(pilot, "enter")
        yield app, pilot, app.query_one(ChatPane)


async def stream_reply(standin: OllamaStandIn, probe: StaticProbe, updates: list[Update]) -> tuple[int, int]:
    """Stream TEXT, its first 600 tokens at once and the last 400 at 100 a second (a model's
    pace: long enough to grow the reply several times however fast the burst was drawn); (updates
    before the reply ended, the transcript's rows)."""
    reply = Reply(text=TEXT, token_delay_s=1 / 100, pace_after_tokens=600)
    async with chatting(standin, probe, reply) as (_, _, chat):
        await wait_until(lambda: chat.streaming)
        first = len(updates)
        await wait_until(lambda: not chat.streaming, timeout=30)
        turn = chat.query_one(AssistantTurn)
        transcript = chat.query_one(Transcript)
        assert turn.source == TEXT
        assert turn.size.height > 2 * transcript.size.height  # it scrolled a long way
        return first, transcript.size.height


async def test_a_frame_draws_the_rows_that_changed_not_every_widget_in_full(
    standin: OllamaStandIn, recorded_probe: StaticProbe, updates: list[Update]
) -> None:
    first, _ = await stream_reply(standin, recorded_probe, updates)
    streamed = [update for update in updates[first:] if not update.laid_out]
    assert len(streamed) >= 8  # frames of the paced end (fewer on a loaded machine), to take a median of
    # A frame adds to the last line or two of the reply: the screen and the few containers under
    # it draw those rows (Textual alone drew every overlapping widget whole: ~275 rows).
    assert statistics.median(update.rows_drawn for update in streamed) <= 40


async def test_a_growth_of_the_reply_repaints_the_transcript_once(
    standin: OllamaStandIn, recorded_probe: StaticProbe, updates: list[Update]
) -> None:
    first, transcript_rows = await stream_reply(standin, recorded_probe, updates)
    streamed = updates[first:]
    layouts = sum(update.laid_out for update in streamed)
    assert layouts >= 4  # the paced end grew the reply (8 lines at a time) several times
    # Repaints of most of the transcript outside a layout: none but the last frame's (the reply
    # ends, its room is given back). Before, the frame after each growth repainted the whole
    # visible reply a second time.
    big_repaints = [
        update
        for update in streamed
        if not update.laid_out
        and update.rows_drawn >= transcript_rows * 2
        and any(isinstance(widget, AssistantTurn) for widget in update.widgets_drawn)
    ]
    assert len(big_repaints) <= 2, [update.rows_drawn for update in big_repaints]


async def test_a_partial_update_writes_what_textuals_own_compositor_writes(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    async with chatting(standin, recorded_probe, Reply(text=TEXT)) as (app, pilot, chat):
        await wait_until(lambda: bool(chat.query(AssistantTurn)) and not chat.streaming, timeout=30)
        await pilot.pause()
        cropped = app.screen._compositor
        assert isinstance(cropped, RowCroppedCompositor)
        # Textual's own compositor over the same layout: the reference for every row.
        textual_own = Compositor()
        textual_own.__dict__.update(cropped.__dict__)
        screen = cropped.size.region

        def written(compositor: Compositor, changed: list[Region]) -> list[tuple[int, int, Strip]]:
            """What an update of the `changed` regions writes: (row, column, strip) for every piece
            of a row that overlaps a changed span (a piece merely touching one writes nothing)."""
            crop = Region.from_union(changed)
            chops = compositor._render_chops(crop, lambda row: True)
            pieces = []
            for row, left, right in compositor._regions_to_spans(changed):
                cuts = compositor.cuts[row]
                for start, end in itertools.pairwise(cuts):
                    if start < right and end > left:
                        strip = chops[row][start]
                        assert strip is not None, (changed, row, start)
                        pieces.append((row, start, strip))
            return pieces

        rng = random.Random(9)
        for _ in range(80):
            changed = []
            for _ in range(rng.randint(1, 3)):
                x, y = rng.randrange(screen.width), rng.randrange(screen.height)
                changed.append(
                    Region(x, y, rng.randint(1, screen.width - x), rng.randint(1, screen.height - y))
                )
            assert written(cropped, changed) == written(textual_own, changed), changed
