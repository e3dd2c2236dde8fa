"""The chat pane: the transcript, a status line with tokens/s, and the prompt."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from types import MappingProxyType

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Markdown, Static
from textual.widgets.markdown import MarkdownStream
from textual.worker import Worker

from llmdeck.chat import ChatSession, TokenMeter, describe_final, describe_live
from llmdeck.fit.report import FitRow
from llmdeck.ollama_api import (
    GenerationStats,
    ModelNotFound,
    OllamaError,
    OllamaService,
    OllamaUnreachable,
    StreamInterrupted,
)
from llmdeck.sanitize import inert

LIVE_STATUS_INTERVAL_S = 0.1  # ten status redraws a second, however fast tokens arrive
# Fewer decoded tokens than this say more about start-up than about speed: not worth calibrating on.
CALIBRATION_MIN_TOKENS = 16


class UserTurn(Static):
    DEFAULT_CSS = """
    UserTurn {
        margin: 1 0 0 6;
        padding: 0 1;
        background: $primary 15%;
        border-left: thick $primary;
    }
    """

    def __init__(self, prompt: str) -> None:
        # A Text, not a str: what the user typed is never read as Textual markup.
        super().__init__(Text(inert(prompt)))


class AssistantTurn(Markdown):
    DEFAULT_CSS = """
    AssistantTurn {
        margin: 1 6 0 0;
        padding: 0 1;
        border-left: thick $secondary;
    }
    """


class TurnNote(Static):
    """A line under a reply: stopped, interrupted or failed, in the words of whoever ended it."""

    DEFAULT_CSS = """
    TurnNote {
        margin: 0 0 0 0;
        padding: 0 1;
        color: $text-muted;
    }
    TurnNote.error {
        color: $error;
    }
    """

    def __init__(self, text: str, *, error: bool = False) -> None:
        super().__init__(Text(inert(text)), classes="error" if error else "")


class ChatPane(Vertical):
    DEFAULT_CSS = """
    ChatPane {
        border: round $primary 50%;
        border-title-color: $text;
    }
    ChatPane #transcript {
        height: 1fr;
        padding: 0 1;
    }
    ChatPane #chat-status {
        height: auto;
        max-height: 3;
        padding: 0 1;
        color: $text-muted;
        background: $boost;
    }
    ChatPane #chat-alarm {
        display: none;
        height: auto;
        padding: 0 1;
        background: $warning 20%;
        color: $text;
    }
    ChatPane #chat-alarm.shown {
        display: block;
    }
    ChatPane #chat-alarm:ansi {
        /* ANSI themes drop the tint's transparency: a solid colour needs its own text colour. */
        background: ansi_yellow;
        color: ansi_black;
    }
    ChatPane #prompt {
        dock: bottom;
    }
    """

    class ReplyMeasured(Message):
        """Ollama's decode rate for a finished reply, beside what llmdeck estimated for it."""

        def __init__(self, model: str, measured_tokens_per_s: float, estimated_tokens_per_s: float) -> None:
            super().__init__()
            self.model = model
            self.measured_tokens_per_s = measured_tokens_per_s
            self.estimated_tokens_per_s = estimated_tokens_per_s

    class RecheckServer(Message):
        """A request failed in a way that says the server or its models changed."""

        def __init__(self, error: OllamaError) -> None:
            super().__init__()
            self.error = error

    def __init__(self, ollama: OllamaService, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._ollama = ollama
        self.session: ChatSession | None = None
        self.plan: FitRow | None = None
        self.model_available = False
        self.online = False
        self._meter: TokenMeter | None = None
        self._reply_worker: Worker[None] | None = None
        self._receiving: asyncio.Task[tuple[GenerationStats | None, OllamaError | None, bool]] | None = None
        self.border_title = "Chat"

    def compose(self) -> ComposeResult:
        yield VerticalScroll(id="transcript")
        yield Static("", id="chat-alarm")
        yield Static("waiting for Ollama…", id="chat-status")
        prompt = Input(placeholder="Type a prompt and press Enter", id="prompt")
        # A steady cursor: blinking repaints the prompt twice a second forever, the largest part
        # of llmdeck's idle CPU (measured), and the highlighted cursor already shows the focus.
        prompt.cursor_blink = False
        yield prompt

    def on_mount(self) -> None:
        self._live_timer = self.set_interval(LIVE_STATUS_INTERVAL_S, self._show_live_status, pause=True)

    @property
    def has_history(self) -> bool:
        return self.session is not None and bool(self.session.turns)

    def use_plan(self, fit: FitRow, options: dict[str, int], *, explicit: bool) -> None:
        """Take the plan's options for the session's requests.

        Options change only before the first message or when the user asked for a change:
        Ollama reloads the model whenever they differ between requests.
        """
        session = self.session
        if session is None or session.model != fit.spec.name:
            return
        if dict(session.options) != options and session.turns and not explicit:
            return  # keep what the requests so far sent, and the plan they were sent with
        self.plan = fit
        if dict(session.options) == options:
            self._show_ready()
            return
        session.options = MappingProxyType(dict(options))
        if session.turns:
            shown = ", ".join(f"{key} {value}" for key, value in options.items())
            self.query_one("#transcript").mount(
                TurnNote(f"options now {shown}: Ollama reloads {session.model} with the next reply")
            )
        self._show_ready()

    def _show_ready(self) -> None:
        if self.streaming or self.session is None:
            return
        parts = [f"ready · {self.session.model}"]
        plan = self.plan.plan if self.plan and self.plan.spec.name == self.session.model else None
        if plan is not None:
            parts.append(f"GPU {plan.num_gpu}/{plan.layers_total} layers · ctx {plan.num_ctx}")
            if self.plan and self.plan.tokens_per_s:
                parts.append(f"~{self.plan.tokens_per_s:.0f} tok/s estimated")
        parts.append("Enter sends, Esc stops")
        self._status(" · ".join(parts))

    def live_rate(self) -> float | None:
        """Tokens/s of the reply streaming now, over the meter's window; None between replies."""
        meter = self._meter
        return None if meter is None else meter.live_rate()

    @property
    def tokens_flowing(self) -> bool:
        meter = self._meter
        return meter is not None and meter.tokens > 0

    def warn(self, text: str | None) -> None:
        """A standing warning above the status line (the GPU claim check); None clears it."""
        alarm = self.query_one("#chat-alarm", Static)
        if text is None:
            alarm.remove_class("shown")
            return
        alarm.update(Text("⚠ " + inert(text), style="bold"))
        alarm.add_class("shown")

    @property
    def streaming(self) -> bool:
        return self._reply_worker is not None and not self._reply_worker.is_finished

    def use_model(self, name: str | None) -> None:
        if name is None:
            # The conversation stays on screen and in memory; there is just nothing to send it to.
            self.model_available = False
            if not self.streaming:
                self._status("no model installed: pull one with `ollama pull llama3.2`, then press ctrl+r")
            return
        self.model_available = True
        if self.session is None:
            self.session = ChatSession(model=name)
        elif self.session.model != name:
            # The conversation goes with the new model; the user sees the switch in the transcript.
            # Its options come with its own plan.
            self.session.model = name
            self.session.options = MappingProxyType({})
            if self.session.turns:
                self.query_one("#transcript").mount(TurnNote(f"now chatting with {name}"))
        self.border_title = f"Chat · {inert(name)}"
        self._show_ready()
        self.query_one("#prompt", Input).placeholder = f"Ask {inert(name)}… (Enter to send)"

    def set_online(self, online: bool) -> None:
        self.online = online
        if not online and not self.streaming:
            self._status("waiting for Ollama…")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        prompt = event.value.strip()
        if not prompt:
            return
        if self.streaming:
            self.notify("A reply is still streaming; Esc stops it.", severity="warning")
            return
        if not self.online:
            self.notify(f"Ollama is not reachable at {self._ollama.host}.", severity="error")
            return
        if self.session is None or not self.model_available:
            self.notify("No model to chat with: pull one with `ollama pull llama3.2`.", severity="error")
            return
        event.input.clear()
        messages = self.session.ask(prompt)
        transcript = self.query_one("#transcript", VerticalScroll)
        reply = AssistantTurn()
        transcript.mount(UserTurn(prompt), reply)
        transcript.anchor()
        self._reply_worker = self._stream_reply(self.session, messages, reply)

    def stop_reply(self) -> bool:
        """Stop receiving the reply; the text so far stays. Returns whether one was arriving."""
        receiving = self._receiving
        if receiving is None or receiving.done():
            return False
        receiving.cancel()
        return True

    @work(group="chat", exclusive=True, exit_on_error=False)
    async def _stream_reply(
        self, session: ChatSession, messages: list[dict[str, str]], reply: AssistantTurn
    ) -> None:
        meter = self._meter = TokenMeter()
        self.warn(None)  # a warning about the previous reply is not about this one
        stream = Markdown.get_stream(reply)
        received: list[str] = []
        self._status(f"waiting for {session.model}… (loading it can take a while)")
        self._live_timer.resume()
        # Esc cancels only this inner task, so the wrap-up below always runs to its end.
        self._receiving = asyncio.create_task(self._receive(session, messages, stream, meter, received))
        try:
            stats, error, stopped = await self._receiving
        finally:
            if not self._receiving.done():  # the app is closing: stop the stream with it
                self._receiving.cancel()
            self._live_timer.pause()
            self._meter = None
        await stream.stop()
        text = "".join(received)
        # One full render at the end: the streamed blocks can differ from a whole-document
        # parse (an unclosed code fence, a table), and the final screen must be exact.
        if text:
            await reply.update(inert(text))
        self._finish(session, text, meter, stats, error, stopped, reply)

    async def _receive(
        self,
        session: ChatSession,
        messages: list[dict[str, str]],
        stream: MarkdownStream,
        meter: TokenMeter,
        received: list[str],
    ) -> tuple[GenerationStats | None, OllamaError | None, bool]:
        """Read the reply into `received`; returns Ollama's figures, the error, whether stopped."""
        stats: GenerationStats | None = None
        try:
            # Closing the iterator closes the HTTP response, which tells Ollama to stop generating.
            async with aclosing(self._ollama.chat(session.model, messages, session.options)) as chunks:
                async for chunk in chunks:
                    if chunk.content:
                        meter.token()
                        received.append(chunk.content)
                        await stream.write(inert(chunk.content))
                    if chunk.stats is not None:
                        stats = chunk.stats
        except asyncio.CancelledError:
            return stats, None, True
        except OllamaError as failure:
            return stats, failure, False
        return stats, None, False

    def _finish(
        self,
        session: ChatSession,
        text: str,
        meter: TokenMeter,
        stats: GenerationStats | None,
        error: OllamaError | None,
        stopped: bool,
        reply: AssistantTurn,
    ) -> None:
        transcript = self.query_one("#transcript", VerticalScroll)
        if text:
            session.answered(text)
        else:
            withdrawn = session.withdraw()
            reply.remove()
            prompt = self.query_one("#prompt", Input)
            if withdrawn and not prompt.value:
                # Nothing came back: give the prompt back so it can be sent again as it was.
                prompt.value = withdrawn
        if stopped:
            transcript.mount(TurnNote(f"stopped by you after {meter.tokens} tokens"))
            self._status(f"stopped · {describe_live(meter)} (llmdeck)")
        elif error is not None:
            note = f"reply interrupted: {error}" if text else str(error)
            transcript.mount(TurnNote(note, error=True))
            self._status(f"error · {error}")
            if isinstance(error, OllamaUnreachable | StreamInterrupted | ModelNotFound):
                self.post_message(self.RecheckServer(error))
        else:
            figures = meter.finish(stats)
            final = describe_final(figures)
            plan = self.plan
            if plan is not None and plan.spec.name == session.model and plan.tokens_per_s:
                calibrated = " (calibrated here)" if plan.calibration is not None else ""
                final += f" · llmdeck estimated ~{plan.tokens_per_s:.0f} tok/s{calibrated}"
                measured, estimated = figures.decode_tokens_per_s, plan.estimated_tokens_per_s
                if measured and estimated and (figures.eval_count or 0) >= CALIBRATION_MIN_TOKENS:
                    self.post_message(self.ReplyMeasured(session.model, measured, estimated))
            self._status(final)

    def _show_live_status(self) -> None:
        meter = self._meter
        if meter is None or self.session is None:
            return
        if meter.tokens == 0:
            return
        self._status(f"streaming · {describe_live(meter)} (live, llmdeck)")

    def _status(self, text: str) -> None:
        # Status lines quote model names and server messages: never let them drive the terminal.
        self.query_one("#chat-status", Static).update(Text(inert(text)))
