"""The streaming reply renderer: the screen ends identical to a full render, and streaming stays
cheap by construction (frames at a fixed rate, one widget per reply, finished blocks drawn once)."""

from __future__ import annotations

import random
import subprocess
import sys
import time

import pytest
from helpers import fast_settings, press_now, type_text, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st
from ollama_standin import OllamaStandIn, Reply
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.geometry import Region

from llmdeck.hardware import StaticProbe
from llmdeck.ollama_api import OllamaService
from llmdeck.ui import markdown_blocks, reply_view
from llmdeck.ui.app import create_app
from llmdeck.ui.chat_pane import AssistantTurn, ChatPane
from llmdeck.ui.markdown_blocks import BlockCutter, render_all, split_blocks
from llmdeck.ui.reply_view import FRAME_S, ReplyView

# Blocks whose parse depends on what follows: an unclosed fence, a table growing row by row,
# a setext heading's underline, a list loose across blank lines, a quote, lazy continuations.
PIECES = [
    "# A heading\n",
    "Some *emphasis* and **strong** text with `code` in it,\nand a second line.\n",
    "Setext heading\n",
    "===\n",
    "---\n",
    "1. first\n2. second\n   - nested\n",
    "- item\n\n- loose item\n",
    "```python\ndef f(x):\n    return x * 2\n```\n",
    "```\nunclosed fence\n",
    "| a | b |\n| --- | ---: |\n| 1 | 2 |\n",
    "| 3 | 4 |\n",
    "> quoted\nlazy continuation\n",
    "    indented code\n",
    "<div>html block</div>\n",
    "[link](https://example.com) and a [ref][r]\n",
    "[r]: https://example.com/ref\n",
    "\n",
    "\n\n",
    "plain words without a newline",
]


def documents() -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(PIECES), min_size=1, max_size=14).map("".join)


def plain(lines: list[markdown_blocks.Line]) -> list[str]:
    return ["".join(segment.text for segment in line) for line in lines]


def streamed_render(text: str, cuts: list[int], width: int) -> tuple[list[str], list[str]]:
    """What a stream of `text` cut at `cuts` draws (as ReplyView does), and its blocks' sources."""
    console = markdown_blocks.render_console(width)
    cutter = BlockCutter()
    blocks: list[markdown_blocks.Block] = []
    start = 0
    for end in [*sorted(cuts), len(text)]:
        cutter.feed(text[start:end])
        start = end
        blocks.extend(cutter.take_finished())
    if cutter.open_source:
        blocks.append(markdown_blocks.Block(cutter.open_source))
    lines: list[markdown_blocks.Line] = []
    for block in blocks:
        # Drawn again with every reference the reply defines, as ReplyView does when one appears.
        drawn = markdown_blocks.render_block(
            markdown_blocks.Block(block.source), console, width, cutter.references
        )
        if drawn and lines:
            lines.append([])
        lines.extend(drawn)
    return plain(lines), [block.source for block in blocks]


@settings(max_examples=300, deadline=None)
@given(documents(), st.lists(st.integers(min_value=0, max_value=2_000), max_size=30))
def test_a_streamed_text_draws_the_same_lines_as_a_full_render(text: str, cuts: list[int]) -> None:
    cuts = [cut % (len(text) + 1) for cut in cuts]
    drawn, sources = streamed_render(text, cuts, 70)
    assert drawn == plain(render_all(text, 70))
    assert "".join(sources) == text  # no character is lost or doubled
    assert "".join(block.source for block in split_blocks(text)) == text


def test_a_whole_render_keeps_every_word_and_styles_the_blocks() -> None:
    text = "".join(PIECES[:8] + PIECES[9:11] + PIECES[8:9])  # the unclosed fence last
    lines = [line.rstrip() for line in plain(render_all(text, 60))]
    shown = "\n".join(lines)
    for word in (
        "A heading",
        "emphasis",
        "Setext heading",
        "nested",
        "loose item",
        "return x * 2",
        "unclosed",
    ):
        assert word in shown
    assert "```" not in shown and "**" not in shown and "| ---" not in shown  # rendered, not source
    assert all(len(line) <= 60 for line in lines)


class OneReply(App[None]):
    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield ReplyView(id="reply")


def texts(view: ReplyView) -> list[str]:
    return [strip.text for strip in view.lines()]


def reference(text: str, width: int) -> list[str]:
    return plain(render_all(text, width))


def random_chunks(text: str, seed: int, largest: int) -> list[str]:
    """`text` cut into pieces of 1 to `largest` characters, as a stream might bring it."""
    sizes = random.Random(seed)
    pieces: list[str] = []
    position = 0
    while position < len(text):
        size = sizes.randint(1, largest)
        pieces.append(text[position : position + size])
        position += size
    return pieces


async def test_streamed_in_any_chunks_the_screen_ends_identical_to_a_full_render() -> None:
    text = "".join(random.Random(7).choice(PIECES) for _ in range(200))
    app = OneReply()
    async with app.run_test(size=(90, 30)) as pilot:
        view = app.query_one(ReplyView)
        pauses = random.Random(3)
        for piece in random_chunks(text, 3, 40):
            view.append(piece)
            if pauses.random() < 0.1:
                await pilot.pause(FRAME_S)
        view.finish()
        await pilot.pause()
        width = view.content_size.width
        assert view.source == text
        assert texts(view) == reference(text, width)
        # A narrower terminal re-wraps every finished block as a full render would.
        await pilot.resize_terminal(50, 30)
        await pilot.pause()
        assert view.content_size.width < width
        assert texts(view) == reference(text, view.content_size.width)


async def test_a_frame_repaints_every_line_that_changed() -> None:
    """Frames repaint only the lines that differ from the last frame; what Textual shows (its
    cached lines) must still be the reply as drawn now, after every frame."""
    text = "".join(random.Random(5).choice(PIECES) for _ in range(60))
    app = OneReply()
    async with app.run_test(size=(70, 200)) as pilot:
        view = app.query_one(ReplyView)
        for piece in random_chunks(text, 9, 60):
            view.append(piece)
            await pilot.pause(FRAME_S * 1.5)
            region = Region(0, 0, view.content_size.width, view.line_count)
            shown = [strip.text.rstrip() for strip in view.render_lines(region)]
            assert shown == [line.rstrip() for line in texts(view)]


async def test_room_kept_while_streaming_is_given_back_when_the_reply_ends() -> None:
    app = OneReply()
    async with app.run_test(size=(90, 30)) as pilot:
        view = app.query_one(ReplyView)
        view.append("One short paragraph.\n\nAnd another one")
        await pilot.pause(FRAME_S * 3)
        assert view.size.height == reply_view.STREAMING_HEIGHT_STEP  # 3 lines drawn, 8 kept
        view.finish()
        await pilot.pause()
        assert view.size.height == view.line_count == 3


async def test_an_open_block_too_long_to_restyle_shows_plain_then_styled_when_finished() -> None:
    items = "".join(f"- item {number} with **strong** words\n" for number in range(150))
    app = OneReply()
    async with app.run_test(size=(90, 30)) as pilot:
        view = app.query_one(ReplyView)
        view.append(items)
        await pilot.pause(FRAME_S * 3)
        assert len(items) > markdown_blocks.OPEN_BLOCK_STYLED_LIMIT
        shown = texts(view)
        assert (
            shown[0] == "- item 0 with **strong** words"
            and shown[-1].rstrip() == "- item 149 with **strong** words"
        )
        view.finish()
        await pilot.pause()
        assert texts(view) == reference(view.source, view.content_size.width)
        assert all("**" not in line for line in texts(view))


async def test_a_long_code_fence_stays_highlighted_while_it_streams_and_ends_exact() -> None:
    code = "".join(f"line_{number} = {number} * 2  # doubled\n" for number in range(400))
    app = OneReply()
    async with app.run_test(size=(90, 30)) as pilot:
        view = app.query_one(ReplyView)
        view.append("```python\n" + code[:-10])
        await pilot.pause(FRAME_S * 3)
        assert len(code) > markdown_blocks.OPEN_BLOCK_STYLED_LIMIT
        shown = texts(view)
        # Drawn as code (no fence marks), the last line still being written included, coloured.
        assert all("```" not in line for line in shown)
        assert shown[-2].strip().startswith("line_399 = 399")
        assert len({segment.style for segment in view.lines()[-2] if segment.text.strip()}) > 1
        view.append(code[-10:] + "```\n")
        view.finish()
        await pilot.pause()
        assert texts(view) == reference(view.source, view.content_size.width)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=120), min_size=1, max_size=60), st.sampled_from([30, 57, 80])
)
def test_an_open_fence_drawn_line_by_line_matches_the_fence_rendered_whole(
    steps: list[int], width: int
) -> None:
    # Code with no string or comment over several lines: the context before new lines is enough
    # for the lexer to colour them as in the whole fence.
    code = "".join(
        f"{'    ' * (number % 3)}value_{number} = compute({number}, 'label {number}')  # step {number}\n"
        if number % 5
        else "\n"
        for number in range(45)
    )
    console = markdown_blocks.render_console(width)
    fence: markdown_blocks.OpenFence[markdown_blocks.Line] | None = None
    end = 0
    for step in steps:
        end = min(len(code), end + step)
        block = BlockCutter(_open="```python\n" + code[:end]).open_block()
        found = markdown_blocks.open_fence(block)
        assert found is not None
        language, body = found
        fence = fence or markdown_blocks.OpenFence(language, width, list)
        rows = fence.draw(body, console)
        if rows is None:
            assert body.count("\n") <= markdown_blocks.FENCE_WHOLE_LINES or not body.strip()
            continue
        assert rows == markdown_blocks.render_block(block, console, width)


def test_drawing_an_open_fence_highlights_a_bounded_number_of_lines_whatever_its_length(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    highlighted: list[int] = []
    original = markdown_blocks.Syntax.highlight

    def counted(self: markdown_blocks.Syntax, code: str, line_range: object = None) -> object:
        highlighted.append(code.count("\n") + 1)
        return original(self, code, line_range)  # type: ignore[arg-type]

    monkeypatch.setattr(markdown_blocks.Syntax, "highlight", counted)
    code = "".join(f"x_{number} = {number}\n" for number in range(600))
    console = markdown_blocks.render_console(60)
    fence = markdown_blocks.OpenFence("python", 60, list)
    fence.draw(code[:200], console)  # the first draw takes every line so far, once
    highlighted.clear()
    for end in range(207, len(code), 7):  # then a frame every 7 characters
        fence.draw(code[:end], console)
    assert len(highlighted) > 500
    # The context, the lines not settled yet, the line settling, the line being written, and the
    # empty line after the newline Rich ends code with.
    most = markdown_blocks.FENCE_CONTEXT_LINES + markdown_blocks.FENCE_UNSETTLED_LINES + 3
    assert max(highlighted) <= most


async def test_streaming_redraws_at_a_bounded_frame_rate_with_one_widget_per_reply(
    standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    """The property that keeps streaming cheap: however fast tokens come, the reply is redrawn at
    most once a frame, and it stays one widget (Textual's Markdown makes one per block and cell,
    and lays all of them out on every update)."""
    text = "".join(random.Random(11).choice(PIECES[:12]) for _ in range(400))
    standin.replies.append(Reply(text=text))
    app = create_app(OllamaService(standin.url), recorded_probe, fast_settings(standin.url))
    async with app.run_test(size=(120, 40)) as pilot:
        chat = app.query_one(ChatPane)
        await wait_until(lambda: app.query_one("#models").row_count > 0)  # type: ignore[attr-defined]
        await type_text(pilot, "hi")
        # Timed from Enter: `pilot.press` would wait for idle (up to 2 s) while the reply streams.
        started = time.perf_counter()
        await press_now(pilot, "enter")
        await wait_until(lambda: not chat.streaming, timeout=30)
        elapsed = time.perf_counter() - started
        reply = chat.query_one(AssistantTurn)
        tokens = standin.streams[-1].sent_tokens
        assert tokens > 1_000
        assert reply.frames <= elapsed / FRAME_S + 3, (reply.frames, elapsed, tokens)
        assert reply.frames < tokens / 10  # not a redraw per token
        assert not reply.children
        assert reply.source == text
        assert texts(reply) == reference(text, reply.content_size.width)


def test_the_warm_up_loads_what_the_first_reply_would_wait_for() -> None:
    """The app warms the renderer up in a thread once the model list shows; it loads what a first
    reply with code would otherwise load while the user waits (a lexer, the code theme)."""
    script = (
        "import sys\n"
        "from llmdeck.ui import markdown_blocks\n"
        "before = {'pygments.lexers.python', 'pygments.styles.monokai'} & set(sys.modules)\n"
        "markdown_blocks.warm_up()\n"
        "after = {'pygments.lexers.python', 'pygments.styles.monokai'} & set(sys.modules)\n"
        "print(len(before), len(after))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "2"]


def test_code_is_drawn_exactly_as_riches_own_markdown_draws_it() -> None:
    """The renderer keeps one code theme and one lexer per language rather than Rich's fresh ones
    per block; what a fence looks like must not change, an unknown language included."""
    from rich.markdown import Markdown

    for fence in (
        '```python\ndef f(x):\n    """Twice x."""\n    return x * 2  # doubled\n```\n',
        "```no-such-language\nplain <words> & {braces}\n```\n",
        "    indented code\n    second line\n",
    ):
        console = markdown_blocks.render_console(50)
        riches = console.render_lines(
            Markdown(fence, code_theme=markdown_blocks.CODE_THEME), console.options, pad=False
        )
        ours = render_all(fence, 50)
        assert ours == [
            line
            for line in riches
            if any(segment.text.strip() or (segment.style and segment.style.bgcolor) for segment in line)
        ]


def test_a_fence_whose_language_arrives_letter_by_letter_looks_up_only_the_whole_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first name Pygments does not know ("p", "py"…) made it search every installed plugin
    # (31 ms here): a frame late while the first fence of a reply streamed.
    names: list[str] = []
    lookup = markdown_blocks._lexer

    def recorded(name: str) -> object:
        names.append(name)
        return lookup(name)

    monkeypatch.setattr(markdown_blocks, "_lexer", recorded)
    text = "```python\nx = 1\n```\n"
    for end in range(1, len(text) + 1):
        cutter = BlockCutter()
        cutter.feed(text[:end])
        for block in [*cutter.take_finished(), cutter.open_block()]:
            markdown_blocks.render_block(block, markdown_blocks.render_console(40), 40)
    assert set(names) == {"python"}
    assert plain(render_all("```python\n```\n", 40)) == plain(render_all("```\n```\n", 40))
