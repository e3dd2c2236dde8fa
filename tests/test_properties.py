"""Properties over inputs nobody would write by hand: whatever a server streams, whatever is in the
config file or the state file, llmdeck answers with a message, never a crash, and loses nothing."""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

from llmdeck.config import Settings, load_settings
from llmdeck.ollama_api import ChatChunk, OllamaError, OllamaService
from llmdeck.state import State, load_state, save_state, update_state

# Stream handling: `/api/chat` bodies from a server that is broken, hostile or cut off.


class NdjsonServer:
    """One loopback server, client and event loop for every example (a client takes a tenth of a
    second to set up); each example sets what `/api/chat` answers."""

    def __init__(self) -> None:
        self.server = HTTPServer(host="127.0.0.1", port=0)
        self.status = 200
        self.lines: list[bytes] = []
        self.server.expect_request("/api/chat", method="POST").respond_with_handler(self._chat)
        self.server.start()
        self.runner = asyncio.Runner()
        self.service = OllamaService(f"http://127.0.0.1:{self.server.port}", connect_timeout_s=2.0)

    def close(self) -> None:
        self.runner.run(self.service.aclose())
        self.runner.close()
        self.server.clear()
        self.server.stop()

    def stream(self) -> tuple[list[ChatChunk], Exception | None]:
        """Every chunk the reply gave, and what ended it if it did not end normally."""

        async def read() -> tuple[list[ChatChunk], Exception | None]:
            chunks: list[ChatChunk] = []
            try:
                async for chunk in self.service.chat("m", [{"role": "user", "content": "hi"}]):
                    chunks.append(chunk)
            except Exception as error:
                return chunks, error
            return chunks, None

        return self.runner.run(read())

    def _chat(self, request: Request) -> Response:
        lines = list(self.lines)

        def body() -> Iterator[bytes]:
            # Line by line, as Ollama flushes them: the client sees them arrive one at a time.
            for line in lines:
                yield line + b"\n"

        return Response(body(), status=self.status, content_type="application/x-ndjson")


@pytest.fixture(scope="module")
def ndjson_server() -> Iterator[NdjsonServer]:
    server = NdjsonServer()
    yield server
    server.close()


def chat_line(content: str, **fields: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "created_at": "2026-11-22T12:00:00.000000Z",
        "message": {"role": "assistant", "content": content},
        "done": False,
        **fields,
    }


def encoded(value: object) -> bytes:
    return json.dumps(value).encode()


TOKENS = st.text(max_size=16)
COUNTS = st.integers(min_value=0, max_value=10**12)
VALID_CHUNK = TOKENS.map(lambda text: encoded(chat_line(text)))
DONE_LINE = st.builds(
    lambda count, duration, reason: encoded(
        chat_line("", done=True, done_reason=reason, eval_count=count, eval_duration=duration)
    ),
    COUNTS,
    COUNTS,
    st.sampled_from(["stop", "length", "load"]),
)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
WRONG_SHAPE = st.one_of(
    JSON_VALUE,
    st.fixed_dictionaries({"message": JSON_VALUE}, optional={"done": JSON_VALUE, "model": JSON_VALUE}),
    st.fixed_dictionaries(
        {"done": st.just(True)}, optional={"message": JSON_VALUE, "eval_count": JSON_VALUE}
    ),
    TOKENS.map(lambda text: chat_line(text, done="yes")),
).map(encoded)
ERROR_LINE = st.fixed_dictionaries({"error": st.text(max_size=30) | JSON_VALUE}).map(encoded)
TRUNCATED = st.one_of(VALID_CHUNK, DONE_LINE).flatmap(
    lambda line: st.integers(min_value=0, max_value=len(line) - 1).map(lambda end: line[:end])
)
ANY_LINE = st.one_of(VALID_CHUNK, DONE_LINE, TRUNCATED, st.binary(max_size=40), WRONG_SHAPE, ERROR_LINE)
# Any lines at all; or a healthy reply with one odd line somewhere in it, which is what reaches
# the end of a stream often enough to test what a finished reply must have seen.
BODY = st.one_of(
    st.lists(ANY_LINE, max_size=8),
    st.builds(
        lambda head, odd, tail, done: [*head, odd, *tail, done],
        st.lists(VALID_CHUNK, max_size=3),
        ANY_LINE,
        st.lists(VALID_CHUNK, max_size=3),
        DONE_LINE,
    ),
)
# Mostly 200 with a stream, as a live server answers; an error status now and then, with any body.
STATUS = st.sampled_from([200, 200, 200, 200, 400, 404, 500, 503])


def is_error_line(line: bytes) -> bool:
    try:
        value = json.loads(line)
    except ValueError:
        return False
    return isinstance(value, dict) and bool(value.get("error"))


@given(status=STATUS, lines=BODY)
@settings(max_examples=60, deadline=None)
def test_any_stream_ends_normally_or_with_an_ollama_error(
    ndjson_server: NdjsonServer, status: int, lines: list[bytes]
) -> None:
    ndjson_server.status, ndjson_server.lines = status, lines
    chunks, error = ndjson_server.stream()
    event("complete" if error is None else type(error).__name__)
    if error is not None:
        # What the chat shows the user as the reason, never a traceback.
        assert isinstance(error, OllamaError), f"{type(error).__name__}: {error}"
        assert str(error)
        return
    # A reply counts as complete only once Ollama has said it is done, and an error line the
    # server sent is never passed over in silence.
    assert status == 200
    assert chunks and chunks[-1].stats is not None
    assert not any(is_error_line(line) for line in lines)


@given(tokens=st.lists(TOKENS, max_size=12), done=DONE_LINE)
@settings(max_examples=30, deadline=None)
def test_a_well_formed_stream_gives_back_every_character(
    ndjson_server: NdjsonServer, tokens: list[str], done: bytes
) -> None:
    ndjson_server.status = 200
    ndjson_server.lines = [encoded(chat_line(token)) for token in tokens] + [done]
    chunks, error = ndjson_server.stream()
    assert error is None
    assert "".join(chunk.content for chunk in chunks) == "".join(tokens)
    assert chunks[-1].stats is not None and chunks[-1].stats.eval_count == json.loads(done)["eval_count"]


# config.toml: whatever the user wrote, llmdeck starts, says what it did not use, and never writes it.

TOML_SCALAR = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.datetimes(),
    st.dates(),
    st.times(),
)
TOML_VALUE = st.recursive(
    TOML_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
CONFIG_KEYS = (
    "host",
    "default_model",
    "context_length",
    "kv_cache_type",
    "refresh",
    "theme",
    "gpu_overhead",
    "keep_alive",
)
# Values of the right kind as well as any value, so documents reach every key's own checks.
PLAUSIBLE = st.one_of(
    TOML_VALUE,
    st.sampled_from(["gpu-box:11434", "https://h", "ftp://x", "q8_0", "F16", "5m", "-1", "", " "]),
    st.integers(min_value=-5, max_value=2**25),
    st.floats(min_value=-1, max_value=2000),
)
KEYMAP = st.dictionaries(
    st.sampled_from(["app.quit", "chat.stop", "models", "nope", ""]),
    st.one_of(
        st.sampled_from(["ctrl+x", "f10,ctrl+x", ""]),
        TOML_VALUE,
        st.dictionaries(st.text(max_size=5), TOML_VALUE, max_size=2),
    ),
    max_size=3,
)
CONFIG_DOCUMENT = st.fixed_dictionaries(
    {},
    optional={key: PLAUSIBLE for key in CONFIG_KEYS} | {"keymap": st.one_of(KEYMAP, TOML_VALUE)},
).flatmap(
    lambda known: st.dictionaries(st.text(max_size=10), TOML_VALUE, max_size=2).map(
        lambda other: {**other, **known}
    )
)
CONFIG_BYTES = st.one_of(
    CONFIG_DOCUMENT.map(lambda document: tomli_w.dumps(document).encode()),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=200),
)


@given(raw=CONFIG_BYTES)
@settings(max_examples=200, deadline=None)
def test_any_config_file_gives_settings_and_problems_and_stays_as_it_was(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.toml"
        path.write_bytes(raw)
        loaded = load_settings(config_path=path, environ={})
        assert path.read_bytes() == raw
    assert isinstance(loaded, Settings)
    problems = loaded.config_problems
    assert all(isinstance(problem, str) and problem.startswith(str(path)) for problem in problems)
    try:
        document = tomllib.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        assert problems, "a file llmdeck cannot read is reported"
        return
    # Every known key is either used, with the file as its source, or named in a problem.
    for key in CONFIG_KEYS:
        if key in document:
            used = loaded.provenance[key].source == "config file"
            assert used or any(key in problem for problem in problems), f"{key} = {document[key]!r}"
    for key in document.keys() - {*CONFIG_KEYS, "keymap"}:
        assert any("unknown" in problem for problem in problems), key


# state.toml: whatever is in it, llmdeck starts; a file it cannot use is moved aside, never deleted.

STATE_DOCUMENT = st.fixed_dictionaries(
    {},
    optional={
        "last_model": st.one_of(st.text(max_size=12), TOML_VALUE),
        "theme": st.one_of(st.text(max_size=12), TOML_VALUE),
        "contexts": st.one_of(
            st.dictionaries(st.text(max_size=8), st.integers(min_value=-2, max_value=2**20) | TOML_VALUE),
            TOML_VALUE,
        ),
        "calibrations": st.one_of(
            st.dictionaries(
                st.text(max_size=8),
                st.dictionaries(
                    st.text(max_size=8),
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "ratio": st.floats() | TOML_VALUE,
                            "samples": st.integers(min_value=-1, max_value=10) | TOML_VALUE,
                        },
                    ),
                    max_size=2,
                ),
                max_size=2,
            ),
            TOML_VALUE,
        ),
    },
).flatmap(
    lambda known: st.dictionaries(st.text(max_size=10), TOML_VALUE, max_size=2).map(
        lambda other: {**other, **known}
    )
)
STATE_BYTES = st.one_of(
    STATE_DOCUMENT.map(lambda document: tomli_w.dumps(document).encode()),
    # A save cut short by a full disk or a crash of some other program that wrote the file.
    STATE_DOCUMENT.map(lambda document: tomli_w.dumps(document).encode()).flatmap(
        lambda raw: st.integers(min_value=0, max_value=len(raw)).map(lambda end: raw[:end])
    ),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=200),
)


def same(first: object, second: object) -> bool:
    """Equal, with nan equal to itself: a nan kept from the file is still the user's nan."""
    if isinstance(first, float) and isinstance(second, float) and math.isnan(first) and math.isnan(second):
        return True
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(same(first[key], second[key]) for key in first)
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(same(a, b) for a, b in zip(first, second, strict=True))
    return first == second


def moved_aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.broken-*"))


@given(raw=STATE_BYTES)
@settings(max_examples=150, deadline=None)
def test_any_state_file_loads_or_is_moved_aside_never_deleted(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "llmdeck" / "state.toml"
        path.parent.mkdir()
        path.write_bytes(raw)
        state, problem = load_state(path)
        assert path.read_bytes() == raw, "reading never changes the file"
        if problem is not None:
            assert state == State() and str(path) in problem
            save_state(path, State(theme="llmdeck-light"))
            [aside] = moved_aside(path)
            assert aside.read_bytes() == raw
            assert load_state(path) == (State(theme="llmdeck-light"), None)
            return
        # A file llmdeck can use keeps everything in it through a save, unknown keys included.
        update_state(path, lambda saved: setattr(saved, "theme", "llmdeck-light"))
        assert moved_aside(path) == []
        again, problem = load_state(path)
        assert problem is None and again.theme == "llmdeck-light"
        assert (again.last_model, again.contexts, again.calibrations) == (
            state.last_model,
            state.contexts,
            state.calibrations,
        )
        assert same(again.extra, state.extra)


def test_a_deeply_nested_state_file_is_moved_aside_not_a_crash(tmp_path: Path) -> None:
    # Found by the property above with nested arrays in its strategy; the smallest depth that
    # fails depends on the stack already in use (477 here, 490 from a shell), hence 1000. The
    # app reads this file before its first screen: llmdeck stops with a traceback.
    path = tmp_path / "llmdeck" / "state.toml"
    path.parent.mkdir()
    raw = b"x = " + b"[" * 1000
    path.write_bytes(raw)
    state, problem = load_state(path)
    assert state == State() and problem is not None
    save_state(path, State())
    [aside] = moved_aside(path)
    assert aside.read_bytes() == raw
