"""The llmdeck app and the factory that builds it from its services."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import Header, Static
from textual.worker import get_current_worker

from llmdeck import __version__
from llmdeck.config import Settings
from llmdeck.fit.facts import FactsError, spec_from_show
from llmdeck.fit.pick import recommend
from llmdeck.fit.projector import measure_projector, projector_paths, with_projector
from llmdeck.fit.report import FitRequest, FitRow
from llmdeck.fit.session import (
    chat_options,
    context_label,
    next_context,
    plan_installed,
    preferred_model,
    step_layers,
)
from llmdeck.fit.spec import ModelSpec
from llmdeck.fit.target import Target, build_target
from llmdeck.hardware import HardwareProbe, HardwareSnapshot
from llmdeck.history import AsyncHistory, History, HistoryError, history_path
from llmdeck.launcher import LaunchError, ServeLauncher, find_ollama
from llmdeck.locality import is_local_host
from llmdeck.model_cache import CACHE_FILE, load_seen, model_cache_path, save_seen
from llmdeck.offload_check import OffloadCheck
from llmdeck.ollama_api import (
    ClientUnavailable,
    InstalledModel,
    OllamaError,
    OllamaService,
    OllamaUnreachable,
    RunningModel,
)
from llmdeck.recovery import SMALLEST_CONTEXT, step_down
from llmdeck.sanitize import inert
from llmdeck.spec_cache import SPEC_CACHE_FILE, facts_key, load_specs, save_specs, spec_cache_path
from llmdeck.state import State, StateError, load_state, state_path, update_state
from llmdeck.store import blob_paths_from_modelfile
from llmdeck.store.report import inspect_store
from llmdeck.ui.bindings import binding_rows
from llmdeck.ui.chat_pane import ChatPane
from llmdeck.ui.cropped_screen import DeckScreen
from llmdeck.ui.hardware_pane import HardwarePane
from llmdeck.ui.key_footer import KeyFooter
from llmdeck.ui.messages import (
    HardwareFailed,
    HardwareSampled,
    HistoryOpened,
    LocalityChecked,
    RecommendationsFailed,
    RecommendationsReady,
    RunningSampled,
    ServerOffline,
    ServerOnline,
    SpecsLoaded,
    StateSaved,
    StoreInspected,
)
from llmdeck.ui.model_manager import ModelManagement
from llmdeck.ui.models_pane import ModelsPane
from llmdeck.ui.recommendation import RecommendationLine
from llmdeck.ui.store_panel import StorePanel
from llmdeck.ui.themes import DEFAULT_THEME, bundled_themes

Handler = TypeVar("Handler", bound=Callable[..., None])


def while_mounted(handler: Handler) -> Handler:
    """Worker results can arrive while the app is closing and its panes are gone: drop them."""

    @functools.wraps(handler)
    def guarded(*args: Any, **kwargs: Any) -> None:
        with contextlib.suppress(NoMatches):
            handler(*args, **kwargs)

    return cast(Handler, guarded)


STARTUP_QUIET_S = 1.5
# How long after the model list first shows the Markdown renderer is loaded, in a thread: the
# first reply then starts at once (loading it then held the first frame up ~170 ms).
RENDERER_WARM_UP_DELAY_S = 0.5
PROBE_CLOSE_WAIT_S = 1.0


def default_model(models: list[InstalledModel]) -> str | None:
    """The model the chat starts with: for now the largest on disk (the fit engine will choose)."""
    if not models:
        return None
    return max(models, key=lambda model: (model.size_bytes, model.name)).name


class OfflineBanner(Static):
    DEFAULT_CSS = """
    OfflineBanner {
        display: none;
        height: auto;
        padding: 0 1;
        background: $error 25%;
        border: tall $error;
    }
    OfflineBanner.shown {
        display: block;
    }
    """


class LlmdeckApp(ModelManagement):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "llmdeck"
    AUTO_FOCUS = "#prompt"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("escape", "stop_reply", "Stop reply", id="chat.stop"),
        Binding("ctrl+r", "reload", "Refresh", id="app.refresh"),
        Binding("f2", "focus_models", "Models", id="models.focus"),
        Binding("f3", "focus_chat", "Chat", id="chat.focus"),
        Binding("f4", "next_theme", "Theme", id="app.theme"),
        Binding("f1,question_mark", "help", "Keys", id="app.help"),
        Binding("f5", "start_ollama", "Start Ollama", id="ollama.start"),
        Binding("f9", "server_log", "Server log", id="ollama.log"),
    ]

    def __init__(
        self,
        ollama: OllamaService,
        probe: HardwareProbe,
        settings: Settings,
        state_file: Path | None = None,
        is_local: Callable[[str], bool] = is_local_host,
        history_file: Path | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        # no-color.org: NO_COLOR turns colour off when it is set and not empty; Textual, which
        # reads it while the app is built, also counts an empty one.
        if os.environ.get("NO_COLOR") == "":
            del os.environ["NO_COLOR"]
        super().__init__()
        self.history_file = history_file if history_file is not None else history_path()
        self.history: AsyncHistory | None = None
        # The chats kept from earlier runs come first: the plan picks a model only for a new one.
        self.history_restored = False
        self.is_local = is_local
        self.ollama = ollama
        self.probe = probe
        self.settings = settings
        self.state_file = state_file if state_file is not None else state_path()
        self.state, self.state_problem = load_state(self.state_file)
        self.model_cache_file = cache_dir / CACHE_FILE if cache_dir is not None else model_cache_path()
        self.spec_cache_file = cache_dir / SPEC_CACHE_FILE if cache_dir is not None else spec_cache_path()
        # Assumed local until the address is resolved (in a thread): most servers are.
        self.server_is_local = True
        self.hardware_is_recorded = False
        self.running: list[RunningModel] | None = None
        self.offload_check = OffloadCheck()
        self.running_polled_at = 0.0
        self.launcher: ServeLauncher | None = None
        self.store_path: Path | None = None
        self.sample_now = threading.Event()
        self.sampling_stopped = threading.Event()
        self.probe_lock = threading.Lock()
        self.models: list[InstalledModel] = []
        self.server_version: str | None = None
        # Plans use the hardware as first seen (and as re-read on ctrl+r), not every sample:
        # a loaded model takes VRAM, and its own plan must not flip to "partial" because of it.
        self.plan_snapshot: HardwareSnapshot | None = None
        self.specs: dict[str, ModelSpec] = {}
        self.blob_paths: dict[str, list[Path]] = {}
        self.fits: dict[str, FitRow] = {}
        self.num_ctx: int | None = settings.num_ctx
        # The theme is chosen before the first frame: switched to once the screen was up, it had
        # Textual parse all CSS a second time and restyle every widget (about 5% of the start).
        themes, self.theme_problems = bundled_themes()
        for theme in themes:
            self.register_theme(theme)
        self.own_themes: list[str] = [theme.name for theme in themes]
        self.theme, self.theme_notice = self._initial_theme()
        self.gpu_layers: dict[str, int] = {}
        # The plan picks the chat's first model once; after that only the user changes it.
        self.model_preselected = False
        # The reply (ChatPane.replies_started) whose model /api/ps was read for once its tokens began.
        self.running_read_for_reply = 0
        # What the catalog was last (or is about to be) recommended for: it depends on nothing else.
        self.recommended_for: tuple[Target, FitRequest] | None = None
        self.store_inspected_offline = False
        self._renderer_warmed = False
        self.sub_title = f"v{__version__}"

    def get_default_screen(self) -> Screen[None]:
        return DeckScreen(id="_default")

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner(id="banner")
        with Horizontal(id="panes"):
            with Vertical(id="left"):
                yield HardwarePane(id="hardware")
                yield ModelsPane(id="models")
                yield StorePanel("", id="store")
                yield RecommendationLine("", id="recommend")
            yield ChatPane(self.ollama, keep_alive=self.settings.keep_alive, id="chat")
        yield KeyFooter()

    # Ollama's loaded models: polled at the hardware rate while the server answers.

    @work(exclusive=True, group="ps", exit_on_error=False)
    async def _sample_running(self) -> None:
        if self.server_version is None:
            return
        self.running_polled_at = time.monotonic()
        try:
            running = await self.ollama.running()
        except OllamaError:
            return  # the connect watch reports the server's state
        self.post_message(RunningSampled(running))

    def _poll_running(self) -> None:
        """Read `/api/ps` at the gauge rate while a reply waits for its model, once more when its
        tokens begin (the model is loaded, maybe afresh for new options), else now and then
        while shown: a loaded model's placement does not change while it answers, and reading
        it every second cost 3% of the app's work while a reply streamed."""
        chat = self.query_one(ChatPane)
        read_for_this_reply = self.running_read_for_reply == chat.replies_started
        if chat.streaming and (not chat.tokens_flowing or not read_for_this_reply):
            if chat.tokens_flowing:
                self.running_read_for_reply = chat.replies_started
            self._sample_running()
            return
        pane = self.query_one(HardwarePane)
        shown = pane.screen is self.screen and pane.display and pane.region.area > 0
        now = time.monotonic()
        if shown and now - self.running_polled_at >= self.settings.running_idle_refresh_s:
            self._sample_running()

    @while_mounted
    def on_running_sampled(self, message: RunningSampled) -> None:
        self.running = message.models
        self.query_one(HardwarePane).show_running(message.models)

    @on(ModelsPane.UnloadRequested)
    def _unload_requested(self, message: ModelsPane.UnloadRequested) -> None:
        self._unload(message.name)

    @work(group="unload", exit_on_error=False)
    async def _unload(self, name: str) -> None:
        try:
            await self.ollama.unload(name)
        except OllamaError as error:
            self.notify(f"could not unload {name}: {error}", severity="error")
            return
        self.notify(f"{name} unloaded")
        self._sample_running()

    def on_mount(self) -> None:
        if self.theme_notice is not None:
            self.notify(self.theme_notice, title="Unknown theme", severity="warning", timeout=15)
        self.watch(self, "theme", self._theme_changed, init=False)
        for problem in self.theme_problems:
            self.notify(problem, title="Theme not loaded", severity="warning", timeout=10)
        self._apply_keymap()
        for problem in self.settings.config_problems:
            # Not markup: a message quotes "[keymap]" and values from the file as they are.
            self.notify(problem, title="Config not fully used", severity="warning", timeout=30, markup=False)
        if self.state_problem:
            self.notify(self.state_problem, title="Saved state not used", severity="warning", timeout=15)
        self._run_sampler()
        self._check_locality()
        self._open_history()
        self._show_seen_models()
        self._connect()

    def _show_seen_models(self) -> None:
        """The list this server gave last time, shown until it answers (a small file read: the
        first screen has it, where asking the server first loads the client, ~0.25 s)."""
        seen = load_seen(self.model_cache_file, self.ollama.host)
        if seen is not None and seen.models:
            self.query_one(ModelsPane).show_seen(seen.models, seen.seen_at)

    @work(thread=True, group="model-cache", exit_on_error=False)
    def _remember_models(self, host: str, models: list[InstalledModel]) -> None:
        try:
            save_seen(self.model_cache_file, host, models)
        except OSError as error:
            # Only the next start's first screen is the poorer for it: say so in the log, not a notice.
            self.log.warning(f"model list not cached in {self.model_cache_file}: {error}")

    async def on_unmount(self) -> None:
        self.sampling_stopped.set()
        self.sample_now.set()
        if self.history is not None:
            # Whatever is still queued (the last partial reply) reaches the disk before exit.
            with contextlib.suppress(HistoryError):
                await self.history.aclose()
        if self.launcher is not None:
            # Only the server llmdeck started; one the user started keeps running.
            await asyncio.to_thread(self.launcher.stop)
        await self.ollama.aclose()
        # Not while the sampler is inside the driver, unless the driver hangs: closing must end.
        locked = self.probe_lock.acquire(timeout=PROBE_CLOSE_WAIT_S)
        try:
            self.probe.close()
        finally:
            if locked:
                self.probe_lock.release()

    # Hardware: probes block, so one thread samples at the gauge rate and reports by message
    # (a replaceable one: if the screen falls behind, only the newest sample is drawn).

    @work(thread=True, exclusive=True, group="hardware", exit_on_error=False)
    def _run_sampler(self) -> None:
        worker = get_current_worker()
        while not (worker.is_cancelled or self.sampling_stopped.is_set()):
            with self.probe_lock:
                if self.sampling_stopped.is_set():
                    return
                try:
                    snapshot = self.probe.snapshot()
                except Exception as error:  # psutil or a driver can fail in many ways; the app runs on
                    self.post_message(HardwareFailed(f"{type(error).__name__}: {error}"))
                else:
                    self.post_message(HardwareSampled(snapshot))
            # One long-lived thread, woken early for ctrl+r: cheaper than a worker per sample.
            self.sample_now.wait(self.settings.hardware_refresh_s)
            self.sample_now.clear()

    @while_mounted
    def on_hardware_sampled(self, message: HardwareSampled) -> None:
        chat = self.query_one(ChatPane)
        snapshot = message.snapshot
        self.query_one(HardwarePane).show(snapshot, streaming=chat.tokens_flowing, rate=chat.live_rate())
        self._poll_running()  # at the sampler's pace: one timer less to wake the app
        if self.server_is_local:
            model = chat.streaming_model or (chat.session.model if chat.session else None)
            loaded = next((entry for entry in self.running or [] if entry.name == model), None)
            warning = self.offload_check.observe(snapshot, loaded, chat.tokens_flowing)
            if warning is not None:
                chat.warn(warning)  # it stays after the reply; the next reply clears it
        if self.plan_snapshot is None:
            self.hardware_is_recorded = snapshot.source == "recorded"
            self.plan_snapshot = snapshot
            self._replan()

    # The chats: kept in SQLite, restored at start.

    @work(thread=True, group="history-open", exit_on_error=False)
    def _open_history(self) -> None:
        try:
            history = History(self.history_file)
            chats = history.chats()
        except HistoryError as error:
            self.post_message(HistoryOpened(None, [], str(error)))
            return
        self.post_message(HistoryOpened(history, chats, history.problem))

    @while_mounted
    def on_history_opened(self, message: HistoryOpened) -> None:
        if message.problem:
            self.notify(message.problem, title="Chat history", severity="warning", timeout=30, markup=False)
        if message.history is None:
            self.history_restored = True
            self.query_one(ChatPane).history_ready = True  # chatting goes on, without keeping it
            self._replan()
            return
        self.history = AsyncHistory(message.history)
        self.query_one(ChatPane).restore(self.history, message.chats)
        self.history_restored = True
        if message.chats:
            self.model_preselected = True  # the chat in front keeps the model it had
        self._replan()

    @on(ChatPane.ChatSwitched)
    @while_mounted
    def _chat_switched(self, message: ChatPane.ChatSwitched) -> None:
        session = message.session
        if not session.model:
            return
        if any(model.name == session.model for model in self.models):
            self.query_one(ModelsPane).set_active(session.model)
        if session.turns or session.options:
            # A chat keeps the context its requests were (or will be) sent with, Ollama's default
            # included; a new chat starts with the context chosen now.
            num_ctx = session.options.get("num_ctx")
            if num_ctx != self.num_ctx:
                self.num_ctx = num_ctx
                self._replan()
                return
        self._offer_plan(explicit=False)

    # Where the server runs decides what this machine's gauges and calibrations say about it.

    @work(thread=True, group="locality", exit_on_error=False)
    def _check_locality(self) -> None:
        self.post_message(LocalityChecked(self.is_local(self.ollama.host)))

    @while_mounted
    def on_locality_checked(self, message: LocalityChecked) -> None:
        self.server_is_local = message.local
        self.query_one(HardwarePane).show_remote(None if message.local else self.ollama.host)
        if not message.local:
            self.query_one(ChatPane).warn(None)
        self._replan()

    @property
    def calibrations_apply(self) -> bool:
        """Replies measure the server's machine; they correct plans made for that same machine."""
        return self.server_is_local != self.hardware_is_recorded

    @on(ChatPane.ReplyMeasured)
    def _reply_measured(self, message: ChatPane.ReplyMeasured) -> None:
        if self.calibrations_apply:
            self._record_calibration(
                message.model, message.measured_tokens_per_s, message.estimated_tokens_per_s
            )

    def _record_calibration(self, model: str, measured: float, estimated: float) -> None:
        host = self.ollama.host
        self._save_state(
            lambda state: state.record_calibration(host, model, measured, estimated), replan=True
        )

    @work(thread=True, group="state", exit_on_error=False)
    def _save_state(self, change: Callable[[State], object], replan: bool = False) -> None:
        """Change llmdeck's state file (read afresh, changed, written atomically) off the UI thread."""
        try:
            state = update_state(self.state_file, change)
        except StateError as error:
            self.post_message(StateSaved(None, str(error)))
            return
        self.post_message(StateSaved(state, None, replan=replan))

    @while_mounted
    def on_state_saved(self, message: StateSaved) -> None:
        if message.state is None:
            # Calibrations, the theme and the last model all go there; chatting goes on without.
            problem = message.problem or "state not saved"
            self.notify(problem, title="llmdeck's state not saved", severity="warning", markup=False)
            return
        self.state = message.state
        if message.replan:
            self._replan()

    # Starting Ollama when it is not running

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop_reply":
            # In the footer only while a reply streams; otherwise Esc goes on to whatever else
            # takes it (a dialog, the input).
            try:
                return self.query_one(ChatPane).streaming
            except NoMatches:  # not composed yet
                return False
        if action == "start_ollama":
            return self.server_version is None  # offered (and shown) only while none answers
        if action == "server_log":
            return self.launcher is not None  # only for a server llmdeck started
        return True

    def action_start_ollama(self) -> None:
        host = self.ollama.host
        if self.server_version is not None:
            self.notify(f"Ollama already answers at {host}.", markup=False)
            return
        if not self.server_is_local:
            self.notify(f"{host} is another machine: start Ollama there.", severity="warning", markup=False)
            return
        executable = find_ollama()
        if executable is None:
            self.notify(
                "No ollama executable on PATH: install Ollama from https://ollama.com/download.",
                severity="error",
                markup=False,
            )
            return
        if self.launcher is not None and self.launcher.running:
            self.notify("ollama serve is starting; the log is on F9.", markup=False)
            return
        self.launcher = ServeLauncher(executable, host, models_dir=self.store_path)
        self.refresh_bindings()
        self._launch(self.launcher)

    @work(thread=True, group="launch", exit_on_error=False)
    def _launch(self, launcher: ServeLauncher) -> None:
        # Looking for other servers and starting a process both block: a thread.
        try:
            pid = launcher.start()
        except LaunchError as error:
            self.call_from_thread(
                self.notify, str(error), title="Ollama not started", severity="error", markup=False
            )
            return
        models = f", OLLAMA_MODELS={launcher.models_dir}" if launcher.models_dir else ""
        self.call_from_thread(
            self.notify,
            f"started ollama serve (pid {pid}{models}); F9 shows its log ({launcher.log_path})",
            title="Ollama",
            markup=False,
        )
        self.call_from_thread(self._connect)  # look now rather than after the backoff

    def action_server_log(self) -> None:
        launcher = self.launcher
        if launcher is None:
            self.notify("llmdeck has not started a server; F5 starts one when none answers.", markup=False)
            return
        from llmdeck.ui.log_screen import LogScreen

        self.push_screen(LogScreen(f"ollama serve log · {launcher.log_path}", launcher.log_tail(200)))

    # Themes and keys

    def _initial_theme(self) -> tuple[str, str | None]:
        """The theme last chosen with F4 or the palette, unless config.toml names another since;
        and what to tell the user when that theme is not installed."""
        configured = self.settings.theme
        chosen = self.state.theme
        candidate: str
        if configured and self.state.extra.get("theme_config") != configured:
            candidate = configured
        else:
            candidate = chosen or configured or DEFAULT_THEME
        if candidate not in self.available_themes:
            notice = (
                f"theme {candidate!r} is not installed; using {DEFAULT_THEME}. "
                f"Themes: {', '.join(sorted(self.available_themes))}"
            )
            return DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark", notice
        return candidate, None

    def _theme_changed(self, name: str) -> None:
        configured = self.settings.theme

        def remember(state: State) -> None:
            state.theme = name
            # Which config value this choice overrode: a later edit of config.toml wins again.
            if configured:
                state.extra["theme_config"] = configured
            else:
                state.extra.pop("theme_config", None)

        self._save_state(remember)

    def action_next_theme(self) -> None:
        names = [name for name in self.own_themes if name in self.available_themes]
        if not names:
            return
        following = names[(names.index(self.theme) + 1) % len(names)] if self.theme in names else names[0]
        self.theme = following
        self.notify(f"theme {following} (ctrl+p → themes for Textual's own)", timeout=3)

    def _binding_owners(self) -> list[tuple[str, DOMNode]]:
        return [
            ("anywhere", self),
            ("model list", self.query_one(ModelsPane)),
            ("chat", self.query_one(ChatPane)),
        ]

    def _apply_keymap(self) -> None:
        keymap = dict(self.settings.keymap)
        if not keymap:
            return
        known = {binding_id for _, _, _, binding_id in binding_rows(self._binding_owners())}
        unknown = sorted(set(keymap) - known)
        for binding_id in unknown:
            del keymap[binding_id]
        if unknown:
            self.notify(
                f"[keymap] names no binding {', '.join(unknown)}; F1 lists the binding ids",
                title="Keymap",
                severity="warning",
                timeout=20,
                markup=False,
            )
        self.set_keymap(keymap)

    def action_help(self) -> None:
        where = self.settings.config_path or "config.toml"
        hint = (
            f'Remap keys in the [keymap] table of {where}: binding id = "keys", e.g. "app.quit" = "ctrl+x".'
        )
        from llmdeck.ui.help_screen import HelpScreen

        self.push_screen(HelpScreen(binding_rows(self._binding_owners()), hint))

    @while_mounted
    def on_hardware_failed(self, message: HardwareFailed) -> None:
        self.query_one(HardwarePane).show_failure(message.reason)

    # Ollama: one connect loop, retried with backoff while the server is down.

    @work(exclusive=True, group="connect", exit_on_error=False)
    async def _connect(self) -> None:
        """Find the server, then keep watching it: it may stop, come back, or gain models."""
        delay = self.settings.reconnect_initial_s
        online_with: list[InstalledModel] | None = None
        while True:
            host = self.ollama.host
            try:
                # The version changes only with a restart; a heartbeat reads the models alone (ctrl+r
                # reads both again).
                version = self.server_version if online_with is not None else None
                version = version or await self.ollama.version()
                models = await self.ollama.list_models()
            except OllamaUnreachable as error:
                self.post_message(ServerOffline(host, f"Cannot reach Ollama at {host}", error.detail))
            except ClientUnavailable as error:
                self.post_message(ServerOffline(host, "llmdeck cannot set up the Ollama client", str(error)))
            except OllamaError as error:
                self.post_message(ServerOffline(host, f"Ollama at {host} answers with an error", str(error)))
            except Exception as error:  # a bug must not silently end the watch; report it instead
                self.post_message(ServerOffline(host, f"Checking Ollama at {host} failed", repr(error)))
            else:
                delay = self.settings.reconnect_initial_s
                if models != online_with:
                    online_with = models
                    self.post_message(ServerOnline(version, models))
                await asyncio.sleep(self.settings.heartbeat_s)
                continue
            online_with = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.reconnect_max_s)

    @while_mounted
    def on_server_offline(self, message: ServerOffline) -> None:
        banner = self.query_one(OfflineBanner)
        text = Text()
        text.append(inert(message.headline), style="bold")
        if message.detail:
            text.append(f" ({inert(message.detail)})")
        text.append("\nStart it with ")
        text.append("ollama serve", style="bold")
        text.append(" (or open the Ollama app), or point llmdeck at it with ")
        text.append("--host URL", style="bold")
        text.append(" or ")
        text.append("OLLAMA_HOST", style="bold")
        text.append(". Reconnecting by itself…")
        executable = find_ollama()
        if executable is not None and self.server_is_local:
            text.append("\nPress ")
            text.append("F5", style="bold")
            text.append(f" to start ollama serve ({inert(str(executable))}) here.")
        banner.update(text)
        banner.add_class("shown")
        self.server_version = None
        self.refresh_bindings()
        self.sub_title = f"v{__version__} · Ollama not reachable"
        self.query_one(ChatPane).set_online(False)
        self.query_one(ModelsPane).show_unavailable("Ollama not reachable")
        self.query_one(HardwarePane).show_running(None)
        if not self.store_inspected_offline:
            # Without a server, the store the server would use is still worth a look, and the
            # suggestions are made for an unknown version.
            self.store_inspected_offline = True
            self._inspect_store([], None)
            self._replan()

    @while_mounted
    def on_server_online(self, message: ServerOnline) -> None:
        self.query_one(OfflineBanner).remove_class("shown")
        self.server_version = message.version
        self.refresh_bindings()
        self.sub_title = f"v{__version__} · Ollama {message.version}"
        was = {model.name: model.digest for model in self.models}
        for model in message.models:
            if was.get(model.name, model.digest) != model.digest:
                self.specs.pop(model.name, None)  # pulled again: other files, read them again
        self.models = message.models
        chat = self.query_one(ChatPane)
        current = chat.session.model if chat.session else None
        names = {model.name for model in message.models}
        active = current if current in names else default_model(message.models)
        self.query_one(ModelsPane).show_models(message.models, active)
        self._remember_models(self.ollama.host, message.models)
        chat.set_online(True)
        chat.set_installed(names)
        session = chat.session
        if current is None or current in names or session is None or not session.turns:
            chat.use_model(active)
        # else: a chat under way keeps its model, gone or not; its status line says what to do
        self._sample_running()
        self._load_specs([model.name for model in message.models if model.name not in self.specs])
        if not self._renderer_warmed:
            self._renderer_warmed = True
            # After the first screen, not during it: the start is not slowed by it.
            self.set_timer(RENDERER_WARM_UP_DELAY_S, self._warm_up_renderer)

    @work(thread=True, group="warm-up", exit_on_error=False)
    def _warm_up_renderer(self) -> None:
        # Imported here: loading the Markdown stack is what the warm-up keeps off the start.
        from llmdeck.ui import markdown_blocks

        markdown_blocks.warm_up()

    # Planning: what each installed model needs, from the server's own description of it.

    @work(exclusive=True, group="specs", exit_on_error=False)
    async def _load_specs(self, names: list[str]) -> None:
        specs: dict[str, ModelSpec] = {}
        failures: dict[str, str] = {}
        blob_paths: dict[str, list[Path]] = {}
        installed = {model.name: model.size_bytes for model in self.models}
        known = await asyncio.to_thread(load_specs, self.spec_cache_file)
        server_version = self.server_version or ""
        read: dict[str, ModelSpec] = {}
        for name in names:
            try:
                # First without `verbose`: the modelfile names the model's files (a few hundred
                # bytes), and what was read of those files before is kept. The verbose answer
                # carries the vocabulary as well, megabytes per model.
                show = await self.ollama.show(name, verbose=False)
                modelfile = str(show.get("modelfile", ""))
                key = facts_key(blob_paths_from_modelfile(modelfile), server_version)
                cached = known.get(key) if key is not None else None
                if cached is None:
                    show = await self.ollama.show(name)
                    # Keyed by this answer's own files: the model may have been pulled again since.
                    modelfile = str(show.get("modelfile", ""))
                    key = facts_key(blob_paths_from_modelfile(modelfile), server_version)
                blob_paths[name] = blob_paths_from_modelfile(modelfile)
                spec = replace(cached, name=name) if cached is not None else spec_from_show(name, show)
            except (OllamaError, FactsError) as error:
                failures[name] = str(error)
                continue
            if cached is None and key is not None:
                read[key] = spec  # without a projector: its files are measured each time
            projectors = projector_paths(modelfile)
            if projectors:
                projector = await asyncio.to_thread(measure_projector, spec, projectors, installed.get(name))
                spec = with_projector(spec, projector)
            specs[name] = spec
        self.post_message(SpecsLoaded(specs, failures, blob_paths))
        if read:
            try:
                await asyncio.to_thread(save_specs, self.spec_cache_file, read)
            except OSError as error:
                self.log.warning(f"model facts not cached in {self.spec_cache_file}: {error}")

    @work(thread=True, exclusive=True, group="store", exit_on_error=False)
    def _inspect_store(self, blob_paths: list[Path], served: list[str] | None) -> None:
        self.post_message(StoreInspected(inspect_store(blob_paths, served)))

    @while_mounted
    def on_store_inspected(self, message: StoreInspected) -> None:
        self.store_path = message.report.decision.path
        self.query_one(StorePanel).show(message.report)
        on_disk = {model.name for model in message.report.contents.models}
        self.query_one(ModelsPane).mark_store(on_disk if message.report.contents.exists else None)

    @while_mounted
    def on_specs_loaded(self, message: SpecsLoaded) -> None:
        # The server's word on where its blobs are, kept per model: a later partial reload (a
        # model pulled meanwhile) must not lose the evidence of the others.
        self.blob_paths.update(message.blob_paths)
        served = [model.name for model in self.models]
        evidence = [path for name in served for path in self.blob_paths.get(name, [])]
        self._inspect_store(evidence, served)
        self.specs.update(message.specs)
        for name, reason in message.failures.items():
            self.notify(f"{name}: no plan ({reason})", severity="warning", timeout=8)
        self._replan()

    def _replan(self, explicit: bool = False) -> None:
        """Plan every installed model; `explicit` when the user asked for it (new options apply)."""
        if self.plan_snapshot is None:
            return
        target = build_target(self.plan_snapshot)
        request = FitRequest(
            num_ctx=self.num_ctx,
            ollama_version=self.server_version,
            kv_cache_type=self.settings.kv_cache_type,
            gpu_overhead_bytes=self.settings.gpu_overhead_bytes,
        )
        if self.server_version is None and not self.store_inspected_offline:
            pass  # the server's version decides how layers are placed: wait for it, or for "down"
        elif self.recommended_for == (target, request):
            # Replans for a reply's measured speed, a model pulled or a chat switched leave the
            # catalog's recommendation as it was: planned again it took ~185 M instructions (~0.2 s
            # of a core here) after every reply.
            pass
        elif self.recommended_for is not None:
            self.recommended_for = (target, request)
            self.planning_failure = None  # this plan may well succeed: `b` waits for it
            self._recommend(target, request)
        else:
            # Planning the whole catalog takes a core for about half a second: not while the
            # first screen is being drawn.
            self.recommended_for = (target, request)
            self.set_timer(STARTUP_QUIET_S, lambda: self._recommend(target, request))
        if not self.specs:
            return
        installed = {model.name for model in self.models}
        specs = {name: spec for name, spec in self.specs.items() if name in installed}
        fits = plan_installed(specs, target, request, self.gpu_layers)
        if self.calibrations_apply:
            host = self.ollama.host
            for name, row in fits.items():
                calibration = self.state.calibration(host, name)
                fits[name] = row.calibrated(calibration.ratio if calibration else None)
        self.fits = fits
        self.query_one(ModelsPane).show_fits(self.fits, context_label(self.num_ctx))
        chat = self.query_one(ChatPane)
        if not self.model_preselected and self.history_restored and not chat.has_history:
            self.model_preselected = True
            preferred = self._first_model()
            if preferred is not None:
                saved_context = self.state.contexts.get(preferred)
                if saved_context and saved_context != self.num_ctx:
                    self.num_ctx = saved_context  # the context last used with this model
                    self.call_later(self._replan)
                self.query_one(ModelsPane).set_active(preferred)
                chat.use_model(preferred)
        self._offer_plan(explicit)

    @work(thread=True, exclusive=True, group="recommend", exit_on_error=False)
    def _recommend(self, target: Target, request: FitRequest) -> None:
        # Hundreds of plans over the catalog: a thread, so the screen never waits for them.
        try:
            recommendations = recommend(target, request)
        except Exception as error:  # a bug must not leave "being planned" on screen for ever
            self.post_message(RecommendationsFailed((target, request), f"{type(error).__name__}: {error}"))
            return
        # An exclusive thread worker is cancelled but not stopped: one for a context left behind
        # may end after the newer one, and must not undo it.
        if self.recommended_for == (target, request):
            self.post_message(RecommendationsReady(recommendations))

    @while_mounted
    def on_recommendations_ready(self, message: RecommendationsReady) -> None:
        recommendations = message.recommendations
        if recommendations.planned_for != self.recommended_for:
            return  # planned for a context (or machine) changed since: the newer plan is coming
        self.remember_recommendations(recommendations)
        self.query_one(RecommendationLine).show(recommendations)

    @while_mounted
    def on_recommendations_failed(self, message: RecommendationsFailed) -> None:
        if message.planned_for != self.recommended_for:
            return
        self.planning_failure = message
        self.query_one(RecommendationLine).show_failure(message.reason)
        self.notify(
            f"Planning the catalog for this machine failed: {message.reason}",
            title="Planning",
            severity="error",
            timeout=20,
            markup=False,
        )

    def _offer_plan(self, explicit: bool) -> None:
        chat = self.query_one(ChatPane)
        if chat.session is None:
            return
        fit = self.fits.get(chat.session.model)
        if fit is not None:
            options = chat_options(
                fit, context_chosen=self.num_ctx is not None, layers_chosen=fit.spec.name in self.gpu_layers
            )
            chat.use_plan(fit, options, explicit=explicit)

    @on(ChatPane.PullWanted)
    def _pull_wanted(self, message: ChatPane.PullWanted) -> None:
        self.open_pull(message.model)

    @on(ChatPane.OutOfMemory)
    @while_mounted
    def _out_of_memory(self, message: ChatPane.OutOfMemory) -> None:
        """Ollama could not load the chat's model: plan it smaller, tell the user, try again."""
        chat = self.query_one(ChatPane)
        session = message.session
        fit = self.fits.get(session.model)
        plan = fit.plan if fit is not None else None
        planned_gpu = plan.num_gpu if plan else None
        used_gpu = session.options.get("num_gpu", planned_gpu)
        used_ctx = int(session.options.get("num_ctx") or (plan.num_ctx if plan else SMALLEST_CONTEXT))
        layers_total = plan.layers_total if plan else None
        step = step_down(
            dict(session.options),
            message.kind,
            num_gpu=planned_gpu,
            layers_total=layers_total,
            num_ctx=used_ctx,
        )
        memory = "VRAM" if message.kind == "vram" else "system memory"
        if step is None:
            chat.give_up(message.key, message.prompt, f"Ollama ran out of {memory} even at the smallest load")
            return
        note = f"Ollama ran out of {memory} loading {session.model}: {step.change}"
        if fit is not None and session is chat.session:
            # The plan follows, so the model list shows the load being tried.
            if step.options.get("num_gpu", used_gpu) != used_gpu:
                self.gpu_layers[session.model] = step.options["num_gpu"]
            if step.options.get("num_ctx", used_ctx) != used_ctx:
                self.num_ctx = step.options["num_ctx"]
            self._replan(explicit=True)
        else:
            session.options = MappingProxyType(step.options)
        chat.resend_with(message.key, message.prompt, note)

    @on(ChatPane.RecheckServer)
    def _recheck_server(self, message: ChatPane.RecheckServer) -> None:
        # Restarting the watch checks the server and its model list at once.
        self._connect()

    @on(ModelsPane.ModelChosen)
    def _model_chosen(self, message: ModelsPane.ModelChosen) -> None:
        self.model_preselected = True
        name = message.name
        self.query_one(ChatPane).use_model(name)

        def remember(state: State) -> None:
            state.last_model = name

        self._save_state(remember)
        saved_context = self.state.contexts.get(name)
        if saved_context and saved_context != self.num_ctx:
            self.num_ctx = saved_context
            self._replan(explicit=True)
        else:
            self._offer_plan(explicit=True)
        self.action_focus_chat()
        # Chosen to chat with: in memory before the first prompt, with the options the chat sends.
        self.load_model(name)

    def _first_model(self) -> str | None:
        """config.toml's default model, else the one last chosen, else the plan's pick; if installed."""
        for name in (self.settings.default_model, self.state.last_model):
            if name and name in self.fits:
                return name
        return preferred_model(self.fits)

    @on(ModelsPane.ContextCycled)
    def _context_cycled(self, message: ModelsPane.ContextCycled) -> None:
        self.num_ctx = next_context(self.num_ctx)
        chat = self.query_one(ChatPane)
        if chat.session is not None:
            model, num_ctx = chat.session.model, self.num_ctx

            def remember(state: State) -> None:
                if num_ctx is None:
                    state.contexts.pop(model, None)
                else:
                    state.contexts[model] = num_ctx

            self._save_state(remember)
        self._replan(explicit=True)

    @on(ModelsPane.GpuLayersStepped)
    def _gpu_layers_stepped(self, message: ModelsPane.GpuLayersStepped) -> None:
        chat = self.query_one(ChatPane)
        fit = self.fits.get(chat.session.model) if chat.session else None
        if fit is None:
            self.notify("No plan for the chat's model yet.", severity="warning")
            return
        self.gpu_layers[fit.spec.name] = step_layers(fit, message.step)
        self._replan(explicit=True)

    # Actions

    def action_stop_reply(self) -> None:
        self.query_one(ChatPane).stop_reply()

    def action_reload(self) -> None:
        # Re-plan against the hardware as it is now.
        self.plan_snapshot = None
        self.sample_now.set()
        self._connect()

    def action_focus_models(self) -> None:
        self.query_one(ModelsPane).focus()

    def action_focus_chat(self) -> None:
        self.query_one("#prompt").focus()


def create_app(
    ollama: OllamaService,
    probe: HardwareProbe,
    settings: Settings,
    state_file: Path | None = None,
    is_local: Callable[[str], bool] = is_local_host,
    history_file: Path | None = None,
    cache_dir: Path | None = None,
) -> LlmdeckApp:
    """Build the app from its services; tests pass a loopback Ollama and a recorded probe.

    `state_file` defaults to llmdeck's state directory and `history_file` (the chats) to its data
    directory; `is_local` says whether an Ollama address is this machine (it resolves names, so it
    runs in a thread); `cache_dir` (llmdeck's cache folder) keeps each server's last model list
    and what was read of each model.
    """
    return LlmdeckApp(
        ollama=ollama,
        probe=probe,
        settings=settings,
        state_file=state_file,
        is_local=is_local,
        history_file=history_file,
        cache_dir=cache_dir,
    )
