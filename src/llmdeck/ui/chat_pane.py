"""The chat pane: chats in tabs, each a transcript kept in the history; a status line with
tokens/s; the prompt."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Input, Static, Tab, Tabs
from textual.worker import Worker

from llmdeck.chat import (
    ChatSession,
    ReplyFigures,
    TokenMeter,
    Turn,
    describe_final,
    describe_live,
    figures_record,
    title_from_prompt,
)
from llmdeck.fit.report import FitRow
from llmdeck.history import AsyncHistory, HistoryError, MessageStatus, ReplyWriter, StoredChat, StoredMessage
from llmdeck.ollama_api import (
    GenerationStats,
    ModelNotFound,
    OllamaError,
    OllamaService,
    OllamaUnreachable,
    StreamInterrupted,
)
from llmdeck.recovery import OutOfMemory as OutOfMemoryKind
from llmdeck.recovery import explain, out_of_memory
from llmdeck.sanitize import inert
from llmdeck.ui.laid_out_once import LaidOutOnce
from llmdeck.ui.reply_view import ReplyView

# Four status redraws a second, however fast tokens arrive: a rate is read, not watched frame by frame.
LIVE_STATUS_INTERVAL_S = 0.25
# Fewer decoded tokens than this say more about start-up than about speed: not worth calibrating on.
CALIBRATION_MIN_TOKENS = 16
# A partial reply reaches the disk this often while it streams: at most half a second is lost.
REPLY_SAVE_INTERVAL_S = 0.5
# A chat restored from the history shows its latest messages; the export has them all. Drawing a
# reply costs ~0.85 ms per Markdown block (in a thread, the reply in view first), so 200 long
# replies would still take seconds of a core and be held as widgets; 30 keep it quick.
RESTORED_MESSAGES_SHOWN = 30
# A restored chat's replies, drawn in a thread, are shown this often while it draws them.
RESTORED_BATCH_S = 0.1
# Reading a burst of buffered chunks never waits, so the event loop would get no turn (no frame
# drawn, no key read) until the burst ends; the reader steps aside this often (measured: a
# 20,000-token burst drew 10 frames in 7.5 s without it).
RECEIVE_SLICE_S = 0.01
# No token for this long in the middle of a reply: the status line says the server may be stuck.
STALL_AFTER_S = 10.0
# Smaller loads tried by themselves after Ollama runs out of memory, before asking the user.
OOM_RETRIES = 3


@dataclass(frozen=True, slots=True)
class FailedPrompt:
    """The last prompt whose reply failed, for ctrl+t."""

    key: str
    model: str
    prompt: str
    error: OllamaError
    partial_kept: bool
    # The history rows of the failed prompt and its cut-off reply (none when nothing was kept).
    saved_ids: tuple[int, ...] = ()


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


class AssistantTurn(ReplyView):
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


class StatusLine(Widget):
    """The chat's status: a new text is a repaint, and a layout of the screen only when the text
    needs another number of lines (a Static lays the screen out again on every update)."""

    def __init__(self, text: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._text = Text(text)
        self._lines = 1

    def render(self) -> Text:
        return self._text

    def update(self, text: Text) -> None:
        if text == self._text:
            return
        self._text = text
        width = self.content_size.width
        lines = len(text.wrap(self.app.console, width)) if width > 0 else self._lines
        self.refresh(layout=lines != self._lines)
        self._lines = lines


class Transcript(VerticalScroll, LaidOutOnce):
    """One chat's turns, kept scrolled to the end while a reply streams. (LaidOutOnce second:
    Textual takes a widget's CSS from its first base, and the transcript's is VerticalScroll's.)"""


class ChatTabs(Tabs):
    """The chats, one tab each; not a stop for Tab: the prompt is where the keys go."""

    can_focus = False


class ChatPane(Vertical):
    DEFAULT_CSS = """
    ChatPane {
        border: round $primary 50%;
        border-title-color: $text;
    }
    ChatPane #chat-tabs {
        height: 2;
    }
    ChatPane #transcripts {
        height: 1fr;
    }
    ChatPane .transcript {
        height: 1fr;
        padding: 0 1;
        scrollbar-gutter: stable;
    }
    ChatPane #chat-system {
        display: none;
        height: 1;
        padding: 0 1;
        color: $text-muted;
        text-style: italic;
    }
    ChatPane #chat-system.shown {
        display: block;
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

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "new_chat", "New chat", id="chat.new"),
        Binding("f6", "rename_chat", "Rename chat", id="chat.rename", show=False),
        Binding("f7", "edit_system_prompt", "System prompt", id="chat.system", show=False),
        Binding("f8", "export_chat", "Export chat", id="chat.export", show=False),
        Binding("ctrl+y", "copy_reply", "Copy reply", id="chat.copy", show=False),
        Binding("ctrl+delete", "delete_chat", "Delete chat", id="chat.delete", show=False),
        Binding("ctrl+t", "retry", "Try again", id="chat.retry"),
        Binding("ctrl+pagedown,alt+right", "switch_chat(1)", "Next chat", id="chat.next", show=False),
        Binding("ctrl+pageup,alt+left", "switch_chat(-1)", "Previous chat", id="chat.previous", show=False),
    ]

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

    class PullWanted(Message):
        """The chat's model is not on the server; the user asked to pull it."""

        def __init__(self, model: str) -> None:
            super().__init__()
            self.model = model

    class OutOfMemory(Message):
        """Ollama ran out of memory loading the chat's model; the app picks a smaller load."""

        def __init__(
            self, key: str, session: ChatSession, prompt: str, kind: OutOfMemoryKind, error: OllamaError
        ) -> None:
            super().__init__()
            self.key = key
            self.session = session
            self.prompt = prompt
            self.kind = kind
            self.error = error

    class ChatSwitched(Message):
        """Another chat is in front (switched, new, deleted, restored): its model and options rule."""

        def __init__(self, session: ChatSession) -> None:
            super().__init__()
            self.session = session

    class RestoredDrawn(Message):
        """A restored chat's replies are drawn (in a thread): they can be shown."""

        def __init__(self, key: str, replies: list[AssistantTurn]) -> None:
            super().__init__()
            self.key = key
            self.replies = replies

    def __init__(
        self, ollama: OllamaService, *, keep_alive: float | str | None = None, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self._ollama = ollama
        self._keep_alive = keep_alive
        self._history: AsyncHistory | None = None
        self._history_problems: set[str] = set()
        self.chats: dict[str, ChatSession] = {}
        self.active_key = ""
        self._keys = itertools.count(1)
        # Restored chats are drawn when first shown: a long history costs nothing until then.
        self._pending_render: dict[str, StoredChat] = {}
        self.plan: FitRow | None = None
        self.installed: set[str] | None = None
        self.online = False
        self._meter: TokenMeter | None = None
        self.replies_started = 0  # replies asked for since start: tells one reply from the next
        self._streaming_key: str | None = None
        self._unsaved_reply: tuple[int, list[str]] | None = None
        self._failed: FailedPrompt | None = None
        self._drafts: dict[str, str] = {}
        # Esc before the request went out (while the prompt is being saved).
        self._stop_early = False
        # Sending waits for the chats kept from earlier runs, so a first prompt joins the history.
        self.history_ready = False
        # The status line shows how the last reply ended: a re-plan does not replace it.
        self._result_shown = False
        # Automatic smaller loads after running out of memory, for the prompt being retried.
        self._oom_retries = 0
        self.stall_after_s = STALL_AFTER_S
        self._reply_worker: Worker[None] | None = None
        self._receiving: asyncio.Task[tuple[GenerationStats | None, OllamaError | None, bool]] | None = None
        self.border_title = "Chat"

    def compose(self) -> ComposeResult:
        key = self._new_key()
        self.chats[key] = ChatSession(model="", title="Chat 1")
        self.active_key = key
        yield ChatTabs(Tab("Chat 1", id=key), id="chat-tabs")
        with ContentSwitcher(id="transcripts", initial=f"transcript-{key}"):
            yield Transcript(id=f"transcript-{key}", classes="transcript")
        yield Static("", id="chat-system")
        yield Static("", id="chat-alarm")
        yield StatusLine("waiting for Ollama…", id="chat-status")
        prompt = Input(placeholder="Type a prompt and press Enter", id="prompt")
        # A steady cursor: blinking repaints the prompt twice a second forever, the largest part
        # of llmdeck's idle CPU (measured), and the highlighted cursor already shows the focus.
        prompt.cursor_blink = False
        yield prompt

    def on_unmount(self) -> None:
        # llmdeck is closing while a reply streams (ctrl+q): its worker is cancelled before its
        # wrap-up; keep every token received, queued ahead of the history's final flush.
        unsaved, self._unsaved_reply = self._unsaved_reply, None
        history = self._history
        if unsaved is None or history is None:
            return
        reply_id, received = unsaved
        with contextlib.suppress(HistoryError):
            history.update_message_soon(
                reply_id, "".join(received), status="interrupted", note="llmdeck was closed while it streamed"
            )

    def on_mount(self) -> None:
        # While tokens flow the status is redrawn with the reply's frames (one screen update for
        # both); this timer covers the waits between them (loading, a stall).
        self._live_timer = self.set_interval(
            2 * LIVE_STATUS_INTERVAL_S, self._status_between_frames, pause=True
        )
        self._live_status_at = 0.0

    # The chats

    @property
    def session(self) -> ChatSession | None:
        """The chat in front; None until it has a model to talk to."""
        session = self.chats.get(self.active_key)
        return session if session is not None and session.model else None

    @property
    def active(self) -> ChatSession:
        return self.chats[self.active_key]

    @property
    def has_history(self) -> bool:
        return any(session.turns for session in self.chats.values())

    def _new_key(self) -> str:
        return f"chat-{next(self._keys)}"

    def transcript(self, key: str | None = None) -> VerticalScroll:
        return self.query_one(f"#transcript-{key or self.active_key}", VerticalScroll)

    def restore(self, history: AsyncHistory | None, chats: list[StoredChat]) -> None:
        """Take the chats kept from earlier runs; the newest one comes to the front."""
        self._history = history
        self.history_ready = True
        if not chats:
            return
        placeholder = self.active
        if not placeholder.turns and placeholder.chat_id is None and not self.streaming:
            self._drop_tab(self.active_key)
        newest = max(chats, key=lambda chat: (chat.updated_at, chat.id))
        front = ""
        for stored in chats:
            key = self._add_chat(_session_from(stored))
            self._pending_render[key] = stored
            if stored is newest:
                front = key
        self._activate(front)

    def _add_chat(self, session: ChatSession) -> str:
        key = self._new_key()
        self.chats[key] = session
        self.query_one(ChatTabs).add_tab(Tab(_tab_label(session), id=key))
        self.query_one(ContentSwitcher).mount(Transcript(id=f"transcript-{key}", classes="transcript"))
        return key

    def _drop_tab(self, key: str) -> None:
        self.chats.pop(key, None)
        self._pending_render.pop(key, None)
        self.query_one(ChatTabs).remove_tab(key)
        self.query_one(f"#transcript-{key}").remove()

    def _activate(self, key: str) -> None:
        if key not in self.chats:
            return
        prompt_box = self.query_one("#prompt", Input)
        if key != self.active_key:
            # Each chat keeps what was typed in it (or a prompt given back after a failure).
            if self.active_key in self.chats and prompt_box.value:
                self._drafts[self.active_key] = prompt_box.value
            prompt_box.value = self._drafts.pop(key, "")
        self.active_key = key
        tabs = self.query_one(ChatTabs)
        if tabs.active != key:
            tabs.active = key
        stored = self._pending_render.pop(key, None)
        if stored is not None:
            self._render_stored(key, stored)
        self.query_one(ContentSwitcher).current = f"transcript-{key}"
        session = self.active
        self._show_system_prompt()
        self._show_model(session)
        if not self.streaming:
            self._show_ready()
        self.post_message(self.ChatSwitched(session))

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        if event.tab.id and event.tab.id != self.active_key:
            self._activate(event.tab.id)

    def _render_stored(self, key: str, stored: StoredChat) -> None:
        messages = stored.messages[-RESTORED_MESSAGES_SHOWN:]
        widgets: list[Widget] = []
        hidden = len(stored.messages) - len(messages)
        if hidden:
            widgets.append(TurnNote(f"{hidden} earlier messages not shown here (F8 exports the whole chat)"))
        for message in messages:
            if message.role == "user":
                widgets.append(UserTurn(message.content))
                continue
            if message.content:
                widgets.append(AssistantTurn(inert(message.content)))
            note = _status_note(message)
            if note is not None:
                widgets.append(note)
        if not widgets:
            return
        transcript = self.transcript(key)
        # The replies are drawn in a thread, then shown: drawing Markdown costs ~0.85 ms a block,
        # and the event loop would not draw the screen or read a key meanwhile.
        replies = [widget for widget in widgets if isinstance(widget, AssistantTurn)]
        for reply in replies:
            reply.display = False
        transcript.mount_all(widgets)
        transcript.anchor()
        if replies:
            self.call_after_refresh(self._draw_restored, key, replies)

    def _draw_restored(self, key: str, replies: list[AssistantTurn]) -> None:
        if key not in self.chats:
            return  # deleted meanwhile
        transcript = self.transcript(key)
        switcher = self.query_one(ContentSwitcher)
        if not switcher.size.width:
            self.call_after_refresh(self._draw_restored, key, replies)
            return
        # The width they will be laid out at (their CSS is applied: they are mounted, not
        # displayed); the scrollbar's room is kept whether it shows or not. A wrong guess costs
        # only a redraw.
        styles = replies[0].styles
        width = switcher.content_size.width - transcript.styles.gutter.width
        width -= transcript.styles.scrollbar_size_vertical + styles.margin.width + styles.gutter.width
        self._draw_replies(key, replies, max(width, 1))

    @work(thread=True, group="restore", exit_on_error=False)
    def _draw_replies(self, key: str, replies: list[AssistantTurn], width: int) -> None:
        from llmdeck.ui.markdown_blocks import render_console

        waiting = list(replies)
        drawn: list[AssistantTurn] = []  # not shown yet
        try:
            console = render_console(width)
            shown_at = time.monotonic()
            # The last reply first: it is the one in view. Those above it follow in batches (a
            # chat of long replies takes seconds), each batch a layout.
            while waiting:
                waiting[-1].draw_ahead(width, console)
                drawn.append(waiting.pop())
                if time.monotonic() - shown_at >= RESTORED_BATCH_S:
                    self.post_message(self.RestoredDrawn(key, drawn))
                    drawn, shown_at = [], time.monotonic()
        finally:
            # Shown whatever happened: a reply not drawn here is drawn when laid out.
            if drawn or waiting:
                self.post_message(self.RestoredDrawn(key, drawn + waiting))

    def on_chat_pane_restored_drawn(self, message: ChatPane.RestoredDrawn) -> None:
        message.stop()
        if message.key not in self.chats:
            return
        for reply in message.replies:
            reply.display = True
        self.transcript(message.key).anchor()

    def new_chat(self) -> ChatSession:
        """A fresh chat with the model in front now; its options come with its own plan."""
        model = self.active.model
        numbers = [
            int(match.group(1))
            for s in self.chats.values()
            if (match := re.fullmatch(r"Chat (\d+)", s.title))
        ]
        number = max(numbers, default=len(self.chats)) + 1
        session = ChatSession(model=model, title=f"Chat {number}")
        key = self._add_chat(session)
        self._activate(key)
        return session

    def action_new_chat(self) -> None:
        self.new_chat()
        self.query_one("#prompt", Input).focus()

    def action_switch_chat(self, step: int) -> None:
        keys = list(self.chats)
        if len(keys) < 2:
            return
        self._activate(keys[(keys.index(self.active_key) + step) % len(keys)])

    def action_rename_chat(self) -> None:
        session = self.active
        key = self.active_key

        def renamed(title: str | None) -> None:
            if title is None or not title.strip() or key not in self.chats:
                return
            session.title = " ".join(title.split())
            session.titled_by_user = True
            self._relabel(key)
            if session.chat_id is not None:
                chat_id, name = session.chat_id, session.title
                self._history_call(lambda history: history.rename_chat(chat_id, name))

        self._ask_text("Rename chat", session.title, "Enter renames, Esc keeps the name.", renamed)

    def action_edit_system_prompt(self) -> None:
        session = self.active
        key = self.active_key

        def changed(text: str | None) -> None:
            if text is None or key not in self.chats or text == session.system_prompt:
                return
            session.system_prompt = text
            if session.turns:
                what = "system prompt changed" if text.strip() else "system prompt removed"
                self.transcript(key).mount(TurnNote(f"{what}: it applies from the next reply"))
            if key == self.active_key:
                self._show_system_prompt()
            if session.chat_id is not None:
                chat_id = session.chat_id
                self._history_call(lambda history: history.set_system_prompt(chat_id, text))

        hint = (
            "Sent first in every request of this chat (role system). ctrl+s saves, Esc cancels; "
            "empty means none, so the model's own default applies."
        )
        self._ask_text("System prompt", session.system_prompt, hint, changed, multiline=True)

    def action_delete_chat(self) -> None:
        key = self.active_key
        session = self.active
        if self.streaming and self._streaming_key == key:
            self.notify("A reply is streaming in this chat; Esc stops it first.", severity="warning")
            return
        if not session.turns and session.chat_id is None:
            self._delete(key)
            return
        count = len(session.turns)
        question = f"Delete the chat {session.title!r} and its {count} messages? This cannot be undone."

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._delete(key)

        from llmdeck.ui.confirm_screen import ConfirmScreen

        self.app.push_screen(ConfirmScreen(question, yes_label="Delete"), confirmed)

    def _delete(self, key: str) -> None:
        session = self.chats.get(key)
        if session is None:
            return
        keys = list(self.chats)
        following = (
            keys[keys.index(key) + 1] if keys.index(key) + 1 < len(keys) else keys[keys.index(key) - 1]
        )
        if len(keys) == 1:
            replacement = ChatSession(model=session.model, title="Chat 1")
            following = self._add_chat(replacement)
        self._drop_tab(key)
        if session.chat_id is not None:
            chat_id = session.chat_id
            self._history_call(lambda history: history.delete_chat(chat_id))
        self._activate(following)

    def action_copy_reply(self) -> None:
        reply = self.active.last_reply()
        if not reply:
            self.notify("No reply to copy in this chat yet.", severity="warning")
            return
        # The original text, as the model wrote it: what the user pastes elsewhere is theirs to judge.
        self.app.copy_to_clipboard(reply)
        self.notify(
            f"Copied the last reply ({len(reply)} characters) through the terminal's clipboard (OSC 52).",
            timeout=4,
        )

    def action_export_chat(self) -> None:
        session = self.active
        if not session.turns:
            self.notify("Nothing to export in this chat yet.", severity="warning")
            return
        from llmdeck.export import export_filename

        suggested = Path.cwd() / export_filename(self._stored(session), datetime.now().astimezone())

        def chosen(path: str | None) -> None:
            if path and path.strip():
                self._export(session, Path(path.strip()).expanduser())

        hint = "Enter writes the chat as Markdown there (an existing file is never replaced); Esc cancels."
        self._ask_text("Export chat to Markdown", str(suggested), hint, chosen)

    def _ask_text(
        self,
        title: str,
        text: str,
        hint: str,
        answered: Callable[[str | None], None],
        *,
        multiline: bool = False,
    ) -> None:
        # Imported when first asked: the text area's module is not loaded at start-up.
        from llmdeck.ui.text_prompt import AskText

        self.app.push_screen(AskText(title, text, hint, multiline=multiline), answered)

    @work(group="export", exit_on_error=False)
    async def _export(self, session: ChatSession, path: Path) -> None:
        from llmdeck.export import chat_markdown, export_filename, write_new_file

        stored = await self._stored_from_history(session)
        if await asyncio.to_thread(path.is_dir):
            path = path / export_filename(stored, datetime.now().astimezone())  # a folder: name it
        text = chat_markdown(stored, datetime.now().astimezone())
        try:
            written = await asyncio.to_thread(write_new_file, path, text)
        except OSError as error:
            self.notify(f"Could not write {path}: {error.strerror or error}", severity="error", markup=False)
            return
        self.notify(f"Exported {len(session.turns)} messages to {written}", timeout=8, markup=False)

    async def _stored_from_history(self, session: ChatSession) -> StoredChat:
        """The chat as kept (with each reply's figures), or as on screen when it is not kept."""
        history = self._history
        if history is not None and session.chat_id is not None:
            try:
                await history.flush()
                for stored in await history.chats():
                    if stored.id == session.chat_id:
                        return stored
            except HistoryError as error:
                self._history_failed(error)
        return self._stored(session)

    def _stored(self, session: ChatSession) -> StoredChat:
        now = time.time()
        messages = tuple(
            StoredMessage(index, session.chat_id or 0, turn.role, turn.content, "complete", now, None, "")
            for index, turn in enumerate(session.turns)
        )
        return StoredChat(
            session.chat_id or 0, session.title, session.model or None, session.system_prompt,
            dict(session.options), now, now, messages,
        )  # fmt: skip

    def _relabel(self, key: str) -> None:
        session = self.chats[key]
        self.query_one(ChatTabs).query_one(f"#{key}", Tab).label = _tab_label(session)

    def _show_system_prompt(self) -> None:
        line = self.query_one("#chat-system", Static)
        text = " ".join(self.active.system_prompt.split())
        line.set_class(bool(text), "shown")
        line.update(Text(f"system: {inert(text)}", no_wrap=True, overflow="ellipsis") if text else "")

    def _show_model(self, session: ChatSession) -> None:
        name = session.model
        self.border_title = f"Chat · {inert(name)}" if name else "Chat"
        prompt = self.query_one("#prompt", Input)
        prompt.placeholder = (
            f"Ask {inert(name)}… (Enter to send)" if name else "Type a prompt and press Enter"
        )

    # History: every change is written as it happens, off the UI thread.

    def _history_call(self, call: Callable[[AsyncHistory], Awaitable[object]]) -> None:
        history = self._history
        if history is None:
            return

        async def run() -> None:
            try:
                await call(history)
            except HistoryError as error:
                self._history_failed(error)

        self.run_worker(run(), group="history", exit_on_error=False)

    def _history_failed(self, error: HistoryError) -> None:
        text = str(error)
        if text in self._history_problems:
            return  # once is enough: chatting goes on without it
        self._history_problems.add(text)
        self.notify(text, title="Chat history not saved", severity="warning", timeout=15, markup=False)

    async def _save_prompt(self, session: ChatSession, prompt: str) -> tuple[int | None, int | None]:
        """Commit the prompt, and an empty reply that fills as it streams, before asking Ollama."""
        history = self._history
        if history is None:
            return None, None
        try:
            if session.chat_id is None:
                created = await history.create_chat(
                    session.title, session.model, session.system_prompt, dict(session.options)
                )
                session.chat_id = created.id
            user = await history.add_message(session.chat_id, "user", prompt)
            reply = await history.add_message(session.chat_id, "assistant", "", "streaming")
        except HistoryError as error:
            self._history_failed(error)
            return None, None
        return user.id, reply.id

    async def _save_reply(
        self,
        session: ChatSession,
        ids: tuple[int | None, int | None],
        text: str,
        status: MessageStatus,
        stats: Mapping[str, object] | None,
        note: str,
    ) -> None:
        history = self._history
        user_id, reply_id = ids
        if history is None or user_id is None or reply_id is None:
            return
        try:
            if text:
                await history.update_message(reply_id, text, status=status, stats=stats, note=note)
            else:
                # Nothing came back: the prompt went back to the input, so the history forgets it too.
                await history.delete_message(reply_id)
                await history.delete_message(user_id)
                # A first prompt that got no answer leaves no empty chat behind; a chat whose
                # conversation is empty only because a retry left the first attempt out of it
                # still holds that attempt, and stays.
                chat_id = session.chat_id
                if not session.turns and chat_id is not None and await history.delete_chat_if_empty(chat_id):
                    session.chat_id = None
            # A partial save that failed earlier is reported now (the final one was still tried).
            await history.flush()
        except HistoryError as error:
            self._history_failed(error)

    # The plan and the model

    def use_plan(self, fit: FitRow, options: dict[str, int], *, explicit: bool) -> None:
        """Take the plan's options for the chat in front.

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
            self._show_ready(force=False)  # a re-plan that changes nothing keeps the last reply's figures
            return
        session.options = MappingProxyType(dict(options))
        self._save_model(session)
        if session.turns:
            shown = ", ".join(f"{key} {value}" for key, value in options.items()) or "Ollama's defaults"
            self.transcript().mount(
                TurnNote(f"options now {shown}: Ollama reloads {session.model} with the next reply")
            )
        self._show_ready()

    def _save_model(self, session: ChatSession) -> None:
        if session.chat_id is not None:
            chat_id, model, options = session.chat_id, session.model, dict(session.options)
            self._history_call(lambda history: history.set_model(chat_id, model or None, options))

    def _show_ready(self, *, force: bool = True) -> None:
        """The ready line; unless forced, not over the figures or error of the reply just ended."""
        if self.streaming or (self._result_shown and not force):
            return
        self._result_shown = False
        session = self.session
        if session is None:
            if self.online:
                self._status("no model to chat with: pick one in the list (F2) or pull one (p)")
            return
        if self.installed is not None and session.model not in self.installed:
            self._status(f"{session.model} is not installed any more: pick another model (F2) or pull it (p)")
            return
        parts = [f"ready · {session.model}"]
        plan = self.plan.plan if self.plan and self.plan.spec.name == session.model else None
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

    @property
    def streaming_model(self) -> str | None:
        """The model whose reply is streaming now, in whichever chat."""
        key = self._streaming_key
        return self.chats[key].model if self.streaming and key in self.chats else None

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

    def set_installed(self, names: set[str] | None) -> None:
        self.installed = names
        session = self.session
        self._show_ready(force=session is not None and names is not None and session.model not in names)

    def use_model(self, name: str | None) -> None:
        """The chat in front talks to `name` from now on (None: nothing is installed)."""
        if name is None:
            # The conversation stays on screen and in memory; there is just nothing to send it to.
            self.installed = set()
            if not self.streaming:
                self._status("no model installed: pull one (p in the model list), then chat")
            return
        session = self.active
        if session.model != name:
            # The conversation goes with the new model; the user sees the switch in the transcript.
            # Its options come with its own plan.
            had_model = bool(session.model)
            session.model = name
            session.options = MappingProxyType({})
            if session.turns and had_model:
                self.transcript().mount(TurnNote(f"now chatting with {name}"))
            self._save_model(session)
            for key, other in self.chats.items():
                if not other.model:
                    other.model = name  # chats opened before any model was known
                    self._relabel(key)
        self._show_model(session)
        self._show_ready()

    def set_online(self, online: bool) -> None:
        self.online = online
        if not online and not self.streaming:
            self._status("waiting for Ollama…")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        prompt = event.value.strip()
        if prompt and self._send(self.active_key, prompt):
            event.input.clear()

    def _send(self, key: str, prompt: str, before: Callable[[ChatSession], None] | None = None) -> bool:
        """Send `prompt` in chat `key`; False (and why, in a notification) when it cannot go.
        `before` changes the conversation once it is sure the prompt goes."""
        if self.streaming:
            where = self._streaming_key
            elsewhere = (
                f" in {self.chats[where].title!r}" if where in self.chats and where != self.active_key else ""
            )
            self.notify(
                f"A reply is still streaming{elsewhere}; Esc stops it.", severity="warning", markup=False
            )
            return False
        if not self.online:
            self.notify(f"Ollama is not reachable at {self._ollama.host}.", severity="error", markup=False)
            return False
        if not self.history_ready:
            self.notify("Opening the chat history; send again in a moment.", severity="warning")
            return False
        session = self.chats.get(key)
        if (
            session is None
            or not session.model
            or (self.installed is not None and session.model not in self.installed)
        ):
            self.notify("No installed model to chat with: pick one (F2) or pull one (p).", severity="error")
            return False
        if before is not None:
            before(session)
        if not session.turns and not session.titled_by_user:
            session.title = title_from_prompt(prompt)
            self._relabel(key)
        self._failed = None
        self._stop_early = False
        messages = session.ask(prompt)
        transcript = self.transcript(key)
        asked = UserTurn(prompt)
        reply = AssistantTurn()
        transcript.mount(asked, reply)
        transcript.anchor()
        self._streaming_key = key
        self._reply_worker = self._stream_reply(key, session, prompt, messages, asked, reply)
        self.app.refresh_bindings()  # Esc now stops it: shown in the footer
        return True

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self._reply_worker and event.worker.is_finished:
            self.app.refresh_bindings()  # nothing left for Esc to stop

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "retry":
            return self._failed is not None  # in the footer only when there is something to retry
        return True

    def action_retry(self) -> None:
        """Send the failed prompt again (or, for a model the server lacks, offer to pull it)."""
        failed = self._failed
        if failed is None or self.streaming:
            return
        if isinstance(failed.error, ModelNotFound):
            self.post_message(self.PullWanted(failed.model))
            return
        session = self.chats.get(failed.key)
        if session is None:
            return

        def leave_out_the_failed_attempt(session: ChatSession) -> None:
            # The cut-off reply stays on screen and in the history, but the model gets the
            # question again without it, as if it had never answered; so does a chat restored
            # later. Only once the prompt goes: a retry turned down (offline) changes nothing.
            if failed.partial_kept and session.turns[-2:] and session.turns[-1].role == "assistant":
                del session.turns[-2:]
                if failed.saved_ids:
                    saved = failed.saved_ids
                    self._history_call(lambda history: history.mark_retried(saved))

        prompt_box = self.query_one("#prompt", Input)
        if prompt_box.value.strip() == failed.prompt:
            prompt_box.clear()
        if failed.key != self.active_key:
            self._activate(failed.key)
        self._send(failed.key, failed.prompt, before=leave_out_the_failed_attempt)

    def give_up(self, key: str, prompt: str, note: str) -> None:
        """No smaller load is left to try: say so, and give the prompt back."""
        self._oom_retries = 0
        if key in self.chats:
            self.transcript(key).mount(TurnNote(note, error=True))
        prompt_box = self.query_one("#prompt", Input)
        if not prompt_box.value:
            prompt_box.value = prompt
        self._status(note)

    def resend_with(self, key: str, prompt: str, note: str) -> None:
        """After an out-of-memory load the app chose smaller options: say so, and try again."""
        if key not in self.chats:
            return
        self.transcript(key).mount(TurnNote(note))
        prompt_box = self.query_one("#prompt", Input)
        if prompt_box.value.strip() == prompt:
            prompt_box.clear()
        self._send_when_idle(key, prompt)

    def _send_when_idle(self, key: str, prompt: str) -> None:
        # The failed reply's worker is still wrapping up (saving it): one reply at a time.
        if self.streaming:
            self.set_timer(0.05, lambda: self._send_when_idle(key, prompt))
            return
        self._send(key, prompt)

    def stop_reply(self) -> bool:
        """Stop receiving the reply; the text so far stays. Returns whether one was arriving."""
        receiving = self._receiving
        if receiving is None or receiving.done():
            if self.streaming:
                self._stop_early = True  # the prompt is still being saved: never send it
                return True
            return False
        receiving.cancel()
        return True

    @work(group="chat", exclusive=True, exit_on_error=False)
    async def _stream_reply(
        self,
        key: str,
        session: ChatSession,
        prompt: str,
        messages: list[dict[str, str]],
        asked: UserTurn,
        reply: AssistantTurn,
    ) -> None:
        meter = self._meter = TokenMeter()
        self.replies_started += 1
        # The reply is credited to the model and plan it was asked of, whatever is chosen meanwhile.
        model, plan = session.model, self.plan if self.plan and self.plan.spec.name == session.model else None
        self.warn(None)  # a warning about the previous reply is not about this one
        self._status(f"waiting for {session.model}… (loading it can take a while)")
        ids = await self._save_prompt(session, prompt)
        received: list[str] = []
        # What to save if llmdeck closes mid-reply (see on_unmount).
        self._unsaved_reply = (ids[1], received) if ids[1] is not None else None
        reply.after_frame = self._status_with_frame
        self._live_timer.resume()
        # Esc cancels only this inner task, so the wrap-up below always runs to its end.
        self._receiving = asyncio.create_task(
            self._receive(session, messages, reply, meter, received, ids[1])
        )
        try:
            stats, error, stopped = await self._receiving
        finally:
            if not self._receiving.done():  # the app is closing: stop the stream with it
                self._receiving.cancel()
            self._live_timer.pause()
            self._meter = None
        text = "".join(received)
        reply.finish()  # at once, the last block styled: the screen shows the whole reply
        figures = self._finish(
            key, session, model, plan, text, meter, stats, error, stopped, asked, reply, ids
        )
        status: MessageStatus = "stopped" if stopped else "error" if error is not None else "complete"
        await self._save_reply(
            session, ids, text, status, figures_record(figures) if figures else None, str(error or "")
        )
        self._unsaved_reply = None

    async def _receive(
        self,
        session: ChatSession,
        messages: list[dict[str, str]],
        reply: AssistantTurn,
        meter: TokenMeter,
        received: list[str],
        reply_id: int | None,
    ) -> tuple[GenerationStats | None, OllamaError | None, bool]:
        """Read the reply into `received`; returns Ollama's figures, the error, whether stopped."""
        stats: GenerationStats | None = None
        history = self._history if reply_id is not None else None
        # The partial reply is written twice a second: if llmdeck or the machine dies, it is kept.
        writer = ReplyWriter(REPLY_SAVE_INTERVAL_S)
        writer.due()  # the empty reply was just written
        if self._stop_early:
            return None, None, True
        try:
            # Closing the iterator closes the HTTP response, which tells Ollama to stop generating.
            chunks = self._ollama.chat(session.model, messages, session.options, keep_alive=self._keep_alive)
            async with aclosing(chunks):
                yielded_at = time.monotonic()
                async for chunk in chunks:
                    if time.monotonic() - yielded_at >= RECEIVE_SLICE_S:
                        # Buffered chunks come without a pause: let frames and keys in.
                        await asyncio.sleep(0)
                        yielded_at = time.monotonic()
                    if chunk.content:
                        meter.token()
                        received.append(chunk.content)
                        reply.append(inert(chunk.content))
                        if history is not None and reply_id is not None and writer.due():
                            history.update_message_soon(reply_id, "".join(received))
                    if chunk.stats is not None:
                        stats = chunk.stats
        except asyncio.CancelledError:
            return stats, None, True
        except OllamaError as failure:
            return stats, failure, False
        return stats, None, False

    def _finish(
        self,
        key: str,
        session: ChatSession,
        model: str,
        plan: FitRow | None,
        text: str,
        meter: TokenMeter,
        stats: GenerationStats | None,
        error: OllamaError | None,
        stopped: bool,
        asked: UserTurn,
        reply: AssistantTurn,
        ids: tuple[int | None, int | None],
    ) -> ReplyFigures | None:
        """Show how the reply ended; returns Ollama's figures when it ended well."""
        transcript = self.transcript(key) if key in self.chats else None
        prompt = session.turns[-1].content if session.turns and session.turns[-1].role == "user" else ""
        oom = out_of_memory(error) if error is not None and not text else None
        retry_oom = oom is not None and self._oom_retries < OOM_RETRIES
        if text:
            session.answered(text)
        else:
            withdrawn = session.withdraw()
            if key != self.active_key and withdrawn and not retry_oom:
                self._drafts.setdefault(key, withdrawn)  # given back in its own chat, not this one
                withdrawn = ""
            # Nothing came back: the prompt leaves the conversation, on screen too (it goes back
            # to the input, or is sent again), and the note below says what happened.
            asked.remove()
            reply.remove()
            prompt_box = self.query_one("#prompt", Input)
            if withdrawn and not prompt_box.value and not retry_oom:
                # Nothing came back: give the prompt back so it can be sent again as it was.
                prompt_box.value = withdrawn
        figures: ReplyFigures | None = None
        if stopped:
            self._oom_retries = 0
            if transcript is not None:
                transcript.mount(TurnNote(f"stopped by you after {meter.tokens} tokens"))
            self._status(f"stopped · {describe_live(meter)} (llmdeck)")
        elif error is not None:
            explained = explain(error, model)
            if retry_oom and oom is not None:
                self._oom_retries += 1
                if transcript is not None:
                    transcript.mount(TurnNote(explained, error=True))
                self._status(f"error · {error} · trying a smaller load…")
                self.post_message(self.OutOfMemory(key, session, prompt, oom, error))
                return None
            self._oom_retries = 0
            saved = tuple(row for row in ids if row is not None) if text else ()
            self._failed = FailedPrompt(key, model, prompt, error, partial_kept=bool(text), saved_ids=saved)
            again = "" if isinstance(error, ModelNotFound) else " · ctrl+t sends the prompt again"
            note = f"reply interrupted: {explained}{again}" if text else explained + again
            if transcript is not None:
                transcript.mount(TurnNote(note, error=True))
            self._status(f"error · {explained}")
            if isinstance(error, OllamaUnreachable | StreamInterrupted | ModelNotFound):
                self.post_message(self.RecheckServer(error))
        else:
            self._oom_retries = 0
            figures = meter.finish(stats)
            final = describe_final(figures)
            if plan is not None and plan.tokens_per_s:
                calibrated = " (calibrated here)" if plan.calibration is not None else ""
                final += f" · llmdeck estimated ~{plan.tokens_per_s:.0f} tok/s{calibrated}"
                measured, estimated = figures.decode_tokens_per_s, plan.estimated_tokens_per_s
                if measured and estimated and (figures.eval_count or 0) >= CALIBRATION_MIN_TOKENS:
                    self.post_message(self.ReplyMeasured(model, measured, estimated))
            self._status(final)
        self._result_shown = True
        self.app.refresh_bindings()
        return figures

    def _status_with_frame(self) -> None:
        if time.monotonic() - self._live_status_at >= LIVE_STATUS_INTERVAL_S:
            self._show_live_status()

    def _status_between_frames(self) -> None:
        if time.monotonic() - self._live_status_at >= 2 * LIVE_STATUS_INTERVAL_S:
            self._show_live_status()

    def _show_live_status(self) -> None:
        self._live_status_at = time.monotonic()
        meter = self._meter
        if meter is None:
            return
        key = self._streaming_key
        session = self.chats.get(key) if key is not None else None
        where = f"{session.title}: " if session is not None and key != self.active_key else ""
        silent = meter.silent_for_s()
        if meter.tokens == 0:
            if silent >= 1 and session is not None:
                # Loading a large model can take minutes; the user sees that time pass.
                self._status(
                    f"{where}waiting for {session.model}… {silent:.0f} s"
                    " (loading can take minutes; Esc stops)"
                )
            return
        if silent >= self.stall_after_s:
            self._status(
                f"{where}no tokens for {silent:.0f} s: Ollama may be stuck · Esc stops"
                f" · {meter.tokens} tokens so far"
            )
            return
        self._status(f"{where}streaming · {describe_live(meter)} (live, llmdeck)")

    def _status(self, text: str) -> None:
        # Status lines quote model names and server messages: never let them drive the terminal.
        self.query_one("#chat-status", StatusLine).update(Text(inert(text)))


def _tab_label(session: ChatSession) -> Text:
    # Tab labels are markup by default; a chat's name is whatever the user or a prompt made it.
    return Text(inert(session.title or "Chat"), no_wrap=True, overflow="ellipsis")


def _session_from(stored: StoredChat) -> ChatSession:
    turns = [
        Turn(message.role, message.content)
        for message in stored.messages
        if message.content and not message.retried
    ]
    return ChatSession(
        model=stored.model or "",
        options=MappingProxyType(dict(stored.options)),
        turns=turns,
        title=stored.title,
        system_prompt=stored.system_prompt,
        chat_id=stored.id,
        titled_by_user=True,
    )


def _status_note(message: StoredMessage) -> TurnNote | None:
    if message.status == "stopped":
        return TurnNote("stopped by you")
    if message.status == "interrupted":
        return TurnNote("reply interrupted: llmdeck closed before it ended", error=True)
    if message.status == "error":
        return TurnNote(message.note or "the reply ended with an error", error=True)
    return None
