"""A chat session and the figures of each reply.

Two kinds of rate, never mixed up: the *live* rate is what llmdeck measures while chunks arrive
(one chunk is one token in Ollama's streaming); the *final* rates are Ollama's own, from the last
chunk's nanosecond durations, and match what `ollama run --verbose` prints.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any

from llmdeck.ollama_api import GenerationStats

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Turn:
    role: str
    content: str


@dataclass
class ChatSession:
    """One conversation: its model, its options, its system prompt and its turns.

    `options` are fixed for the session: Ollama reloads the model whenever options that shape its
    memory (`num_ctx`, `num_gpu`) change between requests, so they only change by an explicit act.
    """

    model: str
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    turns: list[Turn] = field(default_factory=list)
    title: str = ""
    system_prompt: str = ""
    # The history row, once something of this chat was worth keeping.
    chat_id: int | None = None
    # A title the user gave is kept; otherwise the first prompt names the chat.
    titled_by_user: bool = False

    def ask(self, prompt: str) -> list[dict[str, str]]:
        """Record the user's prompt; return the messages to send."""
        self.turns.append(Turn("user", prompt))
        return self.messages()

    def messages(self) -> list[dict[str, str]]:
        sent = [{"role": "system", "content": self.system_prompt}] if self.system_prompt.strip() else []
        return sent + [{"role": turn.role, "content": turn.content} for turn in self.turns]

    def answered(self, reply: str) -> None:
        """Keep the reply, even a partial one the user stopped: the model should see what the user saw."""
        self.turns.append(Turn("assistant", reply))

    def withdraw(self) -> str:
        """Take back the last prompt when no reply came, so sending it again does not repeat it."""
        if self.turns and self.turns[-1].role == "user":
            return self.turns.pop().content
        return ""

    def last_reply(self) -> str | None:
        return next((turn.content for turn in reversed(self.turns) if turn.role == "assistant"), None)


TITLE_FROM_PROMPT_CHARS = 32


def title_from_prompt(prompt: str) -> str:
    """A chat's name from its first prompt: the first line, cut at a word near the limit."""
    line = " ".join(prompt.split())
    if len(line) <= TITLE_FROM_PROMPT_CHARS:
        return line
    cut = line[:TITLE_FROM_PROMPT_CHARS].rsplit(" ", 1)[0]
    return (cut if len(cut) >= TITLE_FROM_PROMPT_CHARS // 2 else line[:TITLE_FROM_PROMPT_CHARS]) + "…"


def figures_record(figures: ReplyFigures) -> dict[str, float | int | str]:
    """A reply's figures as kept in the history and the export: only the ones Ollama gave."""
    return {key: value for key, value in asdict(figures).items() if value is not None}


@dataclass(frozen=True, slots=True)
class ReplyFigures:
    """Everything shown in the status line once a reply ends."""

    decode_tokens_per_s: float | None
    prompt_tokens_per_s: float | None
    time_to_first_token_s: float | None
    eval_count: int | None
    prompt_eval_count: int | None
    load_duration_s: float | None
    done_reason: str | None


def per_second(count: int | None, duration_ns: int | None) -> float | None:
    if not count or not duration_ns or duration_ns <= 0:
        return None
    return count * NS_PER_S / duration_ns


class TokenMeter:
    """Measures one reply as it streams.

    The live rate is taken over a sliding window so it shows the current speed, not an average
    dragged down by a slow start; each chunk costs O(1).
    """

    def __init__(self, window_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._window_s = window_s
        self._started = clock()
        self._first_token_at: float | None = None
        self._arrivals: deque[float] = deque()
        self.tokens = 0

    def token(self) -> None:
        now = self._clock()
        if self._first_token_at is None:
            self._first_token_at = now
        self.tokens += 1
        self._arrivals.append(now)
        horizon = now - self._window_s
        while self._arrivals and self._arrivals[0] < horizon:
            self._arrivals.popleft()

    def silent_for_s(self) -> float:
        """Seconds since the last token, or since the request when none came yet."""
        last = self._arrivals[-1] if self._arrivals else self._started
        return self._clock() - last

    @property
    def time_to_first_token_s(self) -> float | None:
        return None if self._first_token_at is None else self._first_token_at - self._started

    def live_rate(self) -> float | None:
        """Tokens per second over the window, or None until two tokens have arrived."""
        if len(self._arrivals) < 2:
            return None
        span = self._arrivals[-1] - self._arrivals[0]
        if span <= 0:
            return None
        # n arrivals bound n-1 intervals.
        return (len(self._arrivals) - 1) / span

    def finish(self, stats: GenerationStats | None) -> ReplyFigures:
        if stats is None:
            return ReplyFigures(None, None, self.time_to_first_token_s, None, None, None, None)
        return ReplyFigures(
            decode_tokens_per_s=per_second(stats.eval_count, stats.eval_duration_ns),
            prompt_tokens_per_s=per_second(stats.prompt_eval_count, stats.prompt_eval_duration_ns),
            time_to_first_token_s=self.time_to_first_token_s,
            eval_count=stats.eval_count,
            prompt_eval_count=stats.prompt_eval_count,
            load_duration_s=None if stats.load_duration_ns is None else stats.load_duration_ns / NS_PER_S,
            done_reason=stats.done_reason,
        )


def describe_final(figures: ReplyFigures) -> str:
    """The status line after a reply: Ollama's figures first, then llmdeck's own measurement."""
    parts: list[str] = []
    if figures.decode_tokens_per_s is not None:
        parts.append(f"{figures.decode_tokens_per_s:.2f} tok/s")
    if figures.prompt_tokens_per_s is not None:
        parts.append(f"prompt {figures.prompt_tokens_per_s:.1f} tok/s")
    if figures.eval_count is not None:
        tokens = f"{figures.eval_count} tokens"
        if figures.prompt_eval_count is not None:
            tokens += f" ({figures.prompt_eval_count} in prompt)"
        parts.append(tokens)
    if figures.load_duration_s is not None and figures.load_duration_s >= 0.05:
        parts.append(f"load {figures.load_duration_s:.2f} s")
    if figures.done_reason == "length":
        parts.append("stopped at the token limit")
    head = " · ".join(parts) + " (Ollama)" if parts else "no figures from Ollama"
    if figures.time_to_first_token_s is not None:
        head += f" · first token {figures.time_to_first_token_s:.2f} s"
    return head


def describe_live(meter: TokenMeter) -> str:
    rate = meter.live_rate()
    shown = f"{rate:.1f} tok/s" if rate is not None else "… tok/s"
    return f"{shown} · {meter.tokens} tokens"
