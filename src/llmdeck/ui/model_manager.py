"""Model management from the models pane: pull, remove, load ahead, details.

A mixin of the app, so the app module keeps to connecting and planning. Each dialog is imported
when it is first opened: start-up, timed to the model list, does not load them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import App
from textual.screen import ModalScreen

from llmdeck.config import Settings
from llmdeck.fit.pick import Recommendations
from llmdeck.fit.report import FitRequest, FitRow
from llmdeck.fit.session import chat_options, context_label
from llmdeck.fit.target import Target
from llmdeck.ollama_api import InstalledModel, OllamaError, OllamaService, RunningModel
from llmdeck.sanitize import inert
from llmdeck.store.removal import bytes_freed
from llmdeck.ui.chat_pane import ChatPane
from llmdeck.ui.messages import RecommendationsFailed
from llmdeck.ui.models_pane import ModelsPane
from llmdeck.units import decimal_size

if TYPE_CHECKING:
    from textual.worker import Worker

    from llmdeck.ui.catalog_screen import CatalogScreen

NS_PER_S = 1_000_000_000
# Words in Ollama's load failures that mean the plan asked for more memory than there is.
_MEMORY_WORDS = ("memory", "cudaMalloc", "alloc")


class ModelManagement(App[None]):
    """Pull, remove, load and describe models; handlers for the models pane's requests."""

    # Set by the app (see LlmdeckApp.__init__); declared here for the handlers below.
    ollama: OllamaService
    settings: Settings
    models: list[InstalledModel]
    fits: dict[str, FitRow]
    num_ctx: int | None
    gpu_layers: dict[str, int]
    store_path: Path | None
    server_version: str | None
    server_is_local: bool
    running: list[RunningModel] | None
    # The catalog's suggestions for this machine, as last computed: what the pull screen offers.
    recommendations: Recommendations | None = None
    # Why the latest planning failed (a bug): `b` then says why there is no catalog rather than
    # that it is being planned.
    planning_failure: RecommendationsFailed | None = None
    # The catalog window while it is open: new plans are listed in it.
    _catalog_window: CatalogScreen | None = None
    # What the catalog is being planned for now (the machine, the context): see _replan.
    recommended_for: tuple[Target, FitRequest] | None

    if TYPE_CHECKING:
        # The app's connect watch (re-reads the model list) and its /api/ps sampler.
        def _connect(self) -> Worker[None]: ...
        def _sample_running(self) -> Worker[None]: ...

    def remember_recommendations(self, recommendations: Recommendations) -> None:
        """The catalog's plans for the machine and context now (the app drops stale ones)."""
        self.recommendations = recommendations
        if self._catalog_window is not None:
            self._catalog_window.show_plans(recommendations.catalog, _planned_context(recommendations))

    # Pull

    def _dialog_open(self) -> bool:
        # A key repeated (or pressed twice) is queued before the first dialog is up: one is enough.
        return isinstance(self.screen, ModalScreen)

    @on(ModelsPane.PullRequested)
    def _pull_requested(self, message: ModelsPane.PullRequested) -> None:
        self.open_pull(message.name)

    def open_pull(self, name: str | None = None) -> None:
        """The pull screen, prefilled with `name` or else the first suggestion not installed."""
        if self._dialog_open():
            return
        if self.server_version is None:
            self.notify(
                f"Ollama is not reachable at {self.ollama.host}: nothing can be pulled.", markup=False
            )
            return
        from llmdeck.ui.pull_screen import PullScreen

        installed = {model.name for model in self.models}
        self.push_screen(PullScreen(self.ollama, self.recommendations, name, installed), self._pulled)

    def _pulled(self, name: str | None) -> None:
        if name is None:
            return
        self.notify(f"pulled {inert(name)}", markup=False)
        self._connect()  # the list, the plans and the store panel follow the new model

    # The catalog

    @on(ModelsPane.BrowseRequested)
    def _browse_requested(self, message: ModelsPane.BrowseRequested) -> None:
        self.open_catalog()

    def open_catalog(self) -> None:
        """Every catalog model planned for this machine; the one chosen goes to the pull window."""
        if self._dialog_open():
            return
        recommendations = self.recommendations
        if recommendations is None or recommendations.planned_for != self.recommended_for:
            failure = self.planning_failure
            if failure is not None and failure.planned_for == self.recommended_for:
                self.notify(
                    f"The catalog could not be planned for this machine: {failure.reason}",
                    severity="error",
                    markup=False,
                )
                return
            # Planned in a thread after start-up, and again when the context changes.
            self.notify("The catalog is being planned for this machine: a moment.", markup=False)
            return
        from llmdeck.ui.catalog_screen import CatalogScreen

        installed = {model.name for model in self.models}
        screen = CatalogScreen(recommendations.catalog, installed, _planned_context(recommendations))
        self._catalog_window = screen
        self.push_screen(screen, self._browsed)

    def _browsed(self, name: str | None) -> None:
        self._catalog_window = None
        if name is not None:
            self.open_pull(name)

    # Remove

    @on(ModelsPane.RemoveRequested)
    def _remove_requested(self, message: ModelsPane.RemoveRequested) -> None:
        if not self._dialog_open():
            self._remove(message.name)

    @work(group="remove", exclusive=True, exit_on_error=False)
    async def _remove(self, name: str) -> None:
        listed = next((model for model in self.models if model.name == name), None)
        # The store on this disk is the server's only when the server runs here.
        root = self.store_path if self.server_is_local else None
        freed = await asyncio.to_thread(bytes_freed, root, name) if root is not None else None
        from llmdeck.ui.confirm_screen import ConfirmScreen

        question = removal_question(name, freed, listed.size_bytes if listed else None)
        confirm = ConfirmScreen(question, yes_label="Remove", title="Remove a model")
        if not await self.push_screen_wait(confirm):
            return
        try:
            await self.ollama.delete(name)
        except OllamaError as error:
            self.notify(f"could not remove {inert(name)}: {error}", severity="error", markup=False)
            self._connect()  # it may be gone already (removed elsewhere): show what the server has
            return
        gone = f"removed {inert(name)}"
        if freed is not None:
            gone += f", {decimal_size(freed)} freed"
        self.notify(gone, markup=False)
        self._connect()

    # Load ahead of chatting

    @on(ModelsPane.LoadRequested)
    def _load_requested(self, message: ModelsPane.LoadRequested) -> None:
        self.load_model(message.name)

    @work(group="load", exclusive=True, exit_on_error=False)
    async def load_model(self, name: str) -> None:
        """Load `name` into Ollama's memory now, with the options the chat will send for it.

        The same options matter: Ollama reloads a model whose `num_ctx` or `num_gpu` differ
        from the ones it was loaded with, which would waste this load.
        """
        if self.server_version is None:
            return
        options = self.chat_options_for(name)
        shown = inert(name)
        self.notify(f"loading {shown}…", timeout=3, markup=False)
        started = time.monotonic()
        try:
            stats = await self.ollama.load(name, options, keep_alive=self.settings.keep_alive)
        except OllamaError as error:
            self.notify(
                f"could not load {shown}: {explain_load_error(error)}", severity="error", markup=False
            )
            return
        seconds = time.monotonic() - started
        if stats is not None and stats.load_duration_ns:
            seconds = stats.load_duration_ns / NS_PER_S  # Ollama's own figure, when it sends one
        self.notify(f"{shown} loaded in {seconds:.1f} s", markup=False)
        self._sample_running()

    def chat_options_for(self, name: str) -> dict[str, Any] | None:
        """The options a chat with `name` sends: the chat's own for its model, else its plan's."""
        session = self.query_one(ChatPane).session
        if session is not None and session.model == name:
            return dict(session.options) or None
        fit = self.fits.get(name)
        if fit is None:
            return None
        options = chat_options(
            fit, context_chosen=self.num_ctx is not None, layers_chosen=name in self.gpu_layers
        )
        return dict(options) or None

    # Details

    @on(ModelsPane.DetailsRequested)
    def _details_requested(self, message: ModelsPane.DetailsRequested) -> None:
        if self._dialog_open():
            return
        from llmdeck.ui.details_screen import DetailsScreen

        name = message.name
        loaded = next((entry for entry in self.running or [] if entry.name == name), None)
        self.push_screen(DetailsScreen(self.ollama, name, self.fits.get(name), loaded))


def _planned_context(recommendations: Recommendations) -> str:
    planned = recommendations.planned_for
    return context_label(planned[1].num_ctx if planned is not None else None)


def removal_question(name: str, freed: int | None, listed_size: int | None) -> Text:
    """What the confirmation says removing a model frees: exactly when the store could be read."""
    text = Text("Remove ")
    text.append(inert(name), style="bold")
    text.append("? ")
    if freed is not None:
        if freed == 0:
            text.append("This frees no space: every layer of it is shared with another model.")
        else:
            text.append(f"This frees {decimal_size(freed)} (blobs no other model uses).")
    elif listed_size:
        text.append(
            f"This frees up to {decimal_size(listed_size)} "
            "(the size Ollama lists; layers shared with other models stay)."
        )
    text.append("\nOllama deletes it from its store; pulling it again downloads it anew.", style="dim")
    return text


def explain_load_error(error: OllamaError) -> str:
    text = str(error)
    if any(word in text for word in _MEMORY_WORDS):
        return text + " (a shorter context, c, or fewer GPU layers, -, may fit)"
    return text
