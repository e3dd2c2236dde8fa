"""The chat pane: the transcript, a status line with tokens/s, and the prompt."""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Markdown, Static
from textual.worker import Worker

from llmdeck.chat import ChatSession, TokenMeter, describe_final, describe_live
from llmdeck.ollama_api import GenerationStats, OllamaError, OllamaService, OllamaUnreachable
from llmdeck.sanitize import inert

LIVE_STATUS_INTERVAL_S = 0.1  # ten status redraws a second, however fast tokens arrive


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
        super().__init__(Text(text), classes="error" if error else "")


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
    ChatPane #prompt {
        dock: bottom;
    }
    """

    class ServerLost(Message):
        """A chat request found no server; the app goes back to reconnecting."""

        def __init__(self, error: OllamaUnreachable) -> None:
            super().__init__()
            self.error = error

    def __init__(self, ollama: OllamaService, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._ollama = ollama
        self.session: ChatSession | None = None
        self.online = False
        self._meter: TokenMeter | None = None
        self._reply_worker: Worker[None] | None = None
        self.border_title = "Chat"

    def compose(self) -> ComposeResult:
        yield VerticalScroll(id="transcript")
        yield Static("waiting for Ollama…", id="chat-status")
        yield Input(placeholder="Type a prompt and press Enter", id="prompt")

    def on_mount(self) -> None:
        self._live_timer = self.set_interval(LIVE_STATUS_INTERVAL_S, self._show_live_status, pause=True)

    @property
    def streaming(self) -> bool:
        return self._reply_worker is not None and not self._reply_worker.is_finished

    def use_model(self, name: str | None) -> None:
        if name is None:
            self.session = None
            self.border_title = "Chat"
            self._status("no model installed: pull one with `ollama pull llama3.2`, then press ctrl+r")
            return
        if self.session is None:
            self.session = ChatSession(model=name)
        elif self.session.model != name:
            # The conversation goes with the new model; the user sees the switch in the transcript.
            self.session.model = name
            self.query_one("#transcript").mount(TurnNote(f"now chatting with {name}"))
        self.border_title = f"Chat · {name}"
        if not self.streaming:
            self._status(f"ready · {name} · Enter sends, Esc stops a reply")
        self.query_one("#prompt", Input).placeholder = f"Ask {name}… (Enter to send)"

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
        if self.session is None:
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
        """Stop the streaming reply; the text so far stays. Returns whether there was one."""
        if not self.streaming or self._reply_worker is None:
            return False
        self._reply_worker.cancel()
        return True

    @work(group="chat", exclusive=True, exit_on_error=False)
    async def _stream_reply(
        self, session: ChatSession, messages: list[dict[str, str]], reply: AssistantTurn
    ) -> None:
        meter = self._meter = TokenMeter()
        stream = Markdown.get_stream(reply)
        received: list[str] = []
        stats: GenerationStats | None = None
        error: OllamaError | None = None
        stopped = False
        self._status(f"waiting for {session.model}… (loading it can take a while)")
        self._live_timer.resume()
        try:
            async for chunk in self._ollama.chat(session.model, messages, session.options):
                if chunk.content:
                    meter.token()
                    received.append(chunk.content)
                    await stream.write(inert(chunk.content))
                if chunk.stats is not None:
                    stats = chunk.stats
        except asyncio.CancelledError:
            stopped = True
            raise
        except OllamaError as failure:
            error = failure
        finally:
            self._live_timer.pause()
            self._meter = None
            await stream.stop()
            text = "".join(received)
            # One full render at the end: the streamed blocks can differ from a whole-document
            # parse (an unclosed code fence, a table), and the final screen must be exact.
            if text:
                await reply.update(inert(text))
            self._finish(session, text, meter, stats, error, stopped, reply)

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
            if isinstance(error, OllamaUnreachable):
                self.post_message(self.ServerLost(error))
        else:
            self._status(describe_final(meter.finish(stats)))

    def _show_live_status(self) -> None:
        meter = self._meter
        if meter is None or self.session is None:
            return
        if meter.tokens == 0:
            return
        self._status(f"streaming · {describe_live(meter)} (live, llmdeck)")

    def _status(self, text: str) -> None:
        self.query_one("#chat-status", Static).update(Text(text))
