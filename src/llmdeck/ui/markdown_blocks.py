"""A Markdown reply cut into its top-level blocks, rendered block by block.

A streamed reply only grows at its end, and in Markdown a top-level block (a paragraph, a list,
a code fence, a table) is settled once the next one has begun. So each finished block is parsed
and rendered once, and only the open last block is redone as text arrives: the work per update
stays the size of one block, however long the reply is. A whole text rendered at once goes
through the same cut, which is why the streamed screen ends identical to a full render.

Plain Rich and markdown-it: no Textual here, so it is tested and benchmarked on its own.
"""

from __future__ import annotations

import functools
import io
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from markdown_it import MarkdownIt
from markdown_it.token import Token
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import CodeBlock, Heading, Markdown, MarkdownElement
from rich.segment import Segment
from rich.style import Style
from rich.syntax import PygmentsSyntaxTheme, Syntax
from rich.text import Text

Line = list[Segment]

# One parser for every block: building a MarkdownIt costs more than parsing a paragraph with it.
_PARSER = MarkdownIt("commonmark").enable("strikethrough").enable("table")
CODE_THEME = "monokai"
# An open block longer than this is drawn as plain text until it is finished: re-highlighting a
# long code fence on every frame would make each frame cost as much as the fence so far.
OPEN_BLOCK_STYLED_LIMIT = 4_000


def parse(source: str, references: dict[str, Any] | None = None) -> list[Token]:
    """Tokens of `source`; `references` holds the reply's link reference definitions, found
    anywhere in it, and gains those in `source` (a block parsed alone must still resolve them)."""
    return _PARSER.parse(source, {"references": references} if references is not None else None)


def block_starts(tokens: Sequence[Token]) -> list[tuple[int, int]]:
    """(token index, source line) where each top-level block begins."""
    return [
        (index, token.map[0])
        for index, token in enumerate(tokens)
        if token.level == 0 and token.nesting != -1 and token.map is not None
    ]


@dataclass(slots=True)
class Block:
    """One top-level block: its source, and its tokens while they are at hand."""

    source: str
    tokens: list[Token] | None = None


@dataclass(slots=True)
class BlockCutter:
    """Cuts a growing text into finished blocks and the open last one.

    `feed` adds text; `take_finished` returns the blocks settled since the last call. Parsing
    covers only the open block and what came after it.
    """

    _open: str = ""
    # Text fed since the open block was last read: joined once per read, not copied per token
    # (appending to a long open block, such as a big code fence, would copy it every token).
    _pending: list[str] = field(default_factory=list, repr=False)
    references: dict[str, Any] = field(default_factory=dict)
    _open_tokens: list[Token] | None = field(default=None, repr=False)

    @property
    def open_source(self) -> str:
        """The open block and everything after it."""
        if self._pending:
            self._open += "".join(self._pending)
            self._pending.clear()
        return self._open

    def feed(self, text: str) -> None:
        if text:
            self._pending.append(text)
            self._open_tokens = None

    def take_finished(self) -> list[Block]:
        tokens = parse(self.open_source, self.references)
        starts = block_starts(tokens)
        if len(starts) < 2:
            self._open_tokens = tokens
            return []
        lines = self.open_source.splitlines(keepends=True)
        finished: list[Block] = []
        # Lines before the first block (blank ones) go with it: no text is ever dropped.
        first_line = 0
        for (token_at, _), (next_token_at, next_line) in itertools.pairwise(starts):
            finished.append(Block("".join(lines[first_line:next_line]), tokens[token_at:next_token_at]))
            first_line = next_line
        last_line = starts[-1][1]
        self._open = "".join(lines[last_line:])
        # The open block's tokens were parsed with line numbers of the whole tail: parse afresh
        # when it is rendered (it is small) rather than renumber them.
        self._open_tokens = None
        return finished

    def open_block(self) -> Block:
        if self._open_tokens is None:
            self._open_tokens = parse(self.open_source, self.references)
        return Block(self.open_source, self._open_tokens)


def split_blocks(source: str, references: dict[str, Any] | None = None) -> list[Block]:
    """All blocks of a whole text, cut as a stream of it would be (a link reference definition
    may end up with a neighbouring block: it draws nothing either way)."""
    cutter = BlockCutter(references={} if references is None else references)
    cutter.feed(source)
    blocks = cutter.take_finished()
    if cutter.open_source:
        blocks.append(cutter.open_block())
    return blocks


class _LeftHeading(Heading):
    """Headings flush left, as in the rest of the app (Rich centres a top-level one)."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        text = self.text.copy()
        text.justify = "left"
        yield text


@functools.cache
def _code_theme() -> PygmentsSyntaxTheme:
    return PygmentsSyntaxTheme(CODE_THEME)


@functools.cache
def _lexer(name: str) -> Any:
    # Looked up as Syntax looks it up itself (same options); none found: Syntax falls back to
    # plain text when given the name, as before.
    return Syntax("", name).lexer or name


class _CodeBlock(CodeBlock):
    """Rich's code block with its theme and lexer made once. Rich makes both anew for every
    block it draws, so each redraw of an open fence looked the lexer up among Pygments' hundreds
    and styled every token kind afresh (measured: 3.8 ms a frame while a fence streamed)."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        code = str(self.text).rstrip()
        # No code yet, nothing to highlight: while a fence streams, its language's name arrives a
        # few letters at a time, and the first name Pygments does not know makes it search every
        # installed plugin (measured: 31 ms, a frame late).
        lexer = _lexer(self.lexer_name) if code else "text"
        yield Syntax(code, lexer, theme=_code_theme(), word_wrap=True, padding=1)


class _BlockMarkdown(Markdown):
    """Rich's Markdown renderer over tokens already parsed (skips its own parser per block)."""

    elements: ClassVar[dict[str, type[MarkdownElement]]] = {
        **Markdown.elements,
        "heading_open": _LeftHeading,
        "fence": _CodeBlock,
        "code_block": _CodeBlock,
    }

    def __init__(self, tokens: list[Token]) -> None:
        self.markup = ""
        self.parsed = tokens
        self.code_theme = CODE_THEME
        self.justify = None
        self.style = "none"
        self.hyperlinks = True
        self.inline_code_lexer = None
        self.inline_code_theme = CODE_THEME


def render_block(
    block: Block, console: Console, width: int, references: dict[str, Any] | None = None
) -> list[Line]:
    """The block's lines at `width`, without blank lines around it (blocks are spaced by one)."""
    tokens = block.tokens if block.tokens is not None else parse(block.source, references)
    lines = console.render_lines(_BlockMarkdown(tokens), console.options.update_width(width), pad=False)
    start, end = 0, len(lines)
    while start < end and _blank(lines[start]):
        start += 1
    while end > start and _blank(lines[end - 1]):
        end -= 1
    return lines[start:end]


def _blank(line: Line) -> bool:
    # A code block's padding is spaces on a background: part of the block, not a gap.
    return all(not segment.text.strip() and not (segment.style and segment.style.bgcolor) for segment in line)


# An open code fence longer than this many lines is drawn a line at a time (OpenFence). Shorter,
# it is rendered whole each frame like any block: exact, and cheap at that size.
FENCE_WHOLE_LINES = 8
# Lines of code before the new ones that are highlighted with them, so that a line is coloured as
# it is in the whole fence (a lexer reads it in context). A multi-line string or comment longer
# than this may be coloured otherwise until the fence ends; the finished fence is drawn whole.
FENCE_CONTEXT_LINES = 8
# The last complete lines are drawn again each frame with the line being written (after fewer
# lines of context), and kept only once this many lines follow them: some lexers colour a line
# by the next (a C function's name once its "{" comes, a shell heredoc).
FENCE_UNSETTLED_LINES = 2
FENCE_TAIL_CONTEXT_LINES = 2


def open_fence(block: Block) -> tuple[str, str] | None:
    """(language, code) of `block` when it is one code fence, closed or still open."""
    tokens = block.tokens if block.tokens is not None else parse(block.source)
    if len(tokens) != 1 or tokens[0].type != "fence":
        return None
    return tokens[0].info.partition(" ")[0], tokens[0].content


Row = TypeVar("Row")


@dataclass(slots=True)
class OpenFence(Generic[Row]):
    """A code fence drawn as it streams, each line highlighted and wrapped once it has settled.

    Rendered whole, an open fence of 80 lines cost 19 ms a frame here (Pygments and Rich over
    every line, fifteen times a second), and past OPEN_BLOCK_STYLED_LIMIT it was shown as plain
    source. Here the rows of settled lines are kept, and each frame highlights only the lines
    after them, with a few lines of context: the rows are Rich's own (Syntax with `line_range`),
    so they match the fence rendered whole.

    `wrap` turns a row into what the caller draws, once per row kept: wrapping all 400 rows of a
    long fence every frame cost twice the drawing (3 ms a frame for Textual's strips).
    """

    language: str
    width: int
    wrap: Callable[[Line], Row]
    lines_kept: list[str] = field(default_factory=list)  # the settled lines whose rows are kept
    rows: list[Row] = field(default_factory=list)
    edges: tuple[Row, Row] | None = None  # the fence's blank first and last rows

    def draw(self, code: str, console: Console) -> list[Row] | None:
        """The fence's rows with `code` so far, or None when it is better rendered whole (short,
        blank, too narrow to draw, or ending in blank lines wider than the code)."""
        *complete, tail = code.split("\n")
        edges = self._edges(console)
        if len(complete) <= FENCE_WHOLE_LINES or not code.strip() or edges is None:
            return None
        tail = tail.rstrip()
        # The whole fence is drawn without the blank lines it ends with: so are these rows (a
        # blank line is one row unless it is wider than the code).
        trailing = 0
        while not tail and trailing < len(complete) and not complete[-1 - trailing].strip():
            trailing += 1
        if any(len(line) > self.width - 2 for line in complete[len(complete) - trailing :]):
            return None
        if complete[: len(self.lines_kept)] != self.lines_kept:
            self.lines_kept, self.rows = [], []  # not the code drawn so far: another fence
        lines = [*complete, tail] if tail else complete
        settled = len(complete) - FENCE_UNSETTLED_LINES
        kept = len(self.lines_kept)
        if settled > kept:
            self.rows.extend(map(self.wrap, self._rows(lines, kept, settled, FENCE_CONTEXT_LINES, console)))
            self.lines_kept = complete[:settled]
            kept = settled
        unsettled = self._rows(lines, kept, len(lines), FENCE_TAIL_CONTEXT_LINES, console)
        shown = self.rows + [self.wrap(row) for row in unsettled]
        if trailing:
            shown = shown[: len(shown) - trailing]
        return [edges[0], *shown, edges[1]]

    def _rows(self, lines: list[str], first: int, end: int, context: int, console: Console) -> list[Line]:
        """Rows of `lines[first:end]`, highlighted after up to `context` lines before them and
        with every line after them."""
        start = max(0, first - context)
        syntax = Syntax(
            "\n".join(lines[start:]),
            _lexer(self.language),
            theme=_code_theme(),
            word_wrap=True,
            padding=(0, 1),
            line_range=(first - start + 1, end - start),
        )
        return console.render_lines(syntax, console.options.update_width(self.width), pad=False)

    def _edges(self, console: Console) -> tuple[Row, Row] | None:
        if self.edges is None:
            blank = Syntax("", "text", theme=_code_theme(), padding=1)
            rows = console.render_lines(blank, console.options.update_width(self.width), pad=False)
            if len(rows) < 2:
                return None  # too narrow for any code: rendered whole, as every block is
            self.edges = (self.wrap(rows[0]), self.wrap(rows[-1]))
        return self.edges


def render_plain(source: str, console: Console, width: int) -> list[Line]:
    """`source` as unstyled wrapped text: what an open block too long to restyle shows."""
    text = Text(source.rstrip("\n"), style=Style(dim=False))
    return console.render_lines(text, console.options.update_width(width), pad=False)


def render_console(width: int) -> Console:
    """A console that only renders (never writes): truecolor, so no colour is approximated."""
    return Console(
        width=max(width, 1),
        color_system="truecolor",
        force_terminal=True,
        legacy_windows=False,
        file=io.StringIO(),  # render_lines never writes; nothing may ever reach the real terminal
    )


def render_all(source: str, width: int, console: Console | None = None) -> list[Line]:
    """A whole text's lines: the reference a streamed reply must end up identical to."""
    console = console or render_console(width)
    rendered: list[Line] = []
    for block in split_blocks(source):  # one parse of the whole: every reference is known
        lines = render_block(block, console, width)
        if lines and rendered:
            rendered.append([])
        rendered.extend(lines)
    return rendered


# A little of everything a reply may hold: rendering it once loads the parser's rules, Rich's
# Markdown and table code, and Pygments with a lexer and the code theme.
_WARM_UP_SAMPLE = """# Heading

Some *emphasis*, **strong**, `code` and a [link](https://example.com).

1. one
2. two
   - nested

```python
def double(x: int) -> int:
    return x * 2
```

| a | b |
| --- | ---: |
| 1 | 2 |

> quoted
"""


def warm_up() -> None:
    """Render a sample once, off the UI thread, so the first reply is not held up by loading
    (measured here: ~170 ms the first time, 3 ms after)."""
    render_all(_WARM_UP_SAMPLE, 60)
