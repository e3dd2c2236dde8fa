"""Messages that carry results from workers back to the widgets."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message

from llmdeck.fit.pick import Recommendations
from llmdeck.fit.report import FitRequest
from llmdeck.fit.spec import ModelSpec
from llmdeck.fit.target import Target
from llmdeck.hardware import HardwareSnapshot
from llmdeck.history import History, StoredChat
from llmdeck.ollama_api import InstalledModel, RunningModel
from llmdeck.state import State
from llmdeck.store.report import StoreReport


class HardwareSampled(Message):
    """A new hardware reading. Only the newest one matters, so a queued one is replaced."""

    def __init__(self, snapshot: HardwareSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, HardwareSampled)


class HardwareFailed(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class ServerOnline(Message):
    def __init__(self, version: str, models: list[InstalledModel]) -> None:
        super().__init__()
        self.version = version
        self.models = models


class ServerOffline(Message):
    def __init__(self, host: str, headline: str, detail: str) -> None:
        super().__init__()
        self.host = host
        self.headline = headline
        self.detail = detail


class SpecsLoaded(Message):
    """Facts about installed models, read from the server's /api/show."""

    def __init__(
        self, specs: dict[str, ModelSpec], failures: dict[str, str], blob_paths: dict[str, list[Path]]
    ) -> None:
        super().__init__()
        self.specs = specs
        self.failures = failures
        # Where the server says the weights are (the modelfile's FROM lines): the real store.
        self.blob_paths = blob_paths


class StoreInspected(Message):
    def __init__(self, report: StoreReport) -> None:
        super().__init__()
        self.report = report


class RecommendationsReady(Message):
    """What the catalog suggests for this machine, computed in a thread."""

    def __init__(self, recommendations: Recommendations) -> None:
        super().__init__()
        self.recommendations = recommendations


class RecommendationsFailed(Message):
    """Planning the catalog for this machine raised (a bug, or a broken installation)."""

    def __init__(self, planned_for: tuple[Target, FitRequest], reason: str) -> None:
        super().__init__()
        self.planned_for = planned_for
        self.reason = reason


class RunningSampled(Message):
    """What Ollama has loaded now (`/api/ps`); only the newest matters."""

    def __init__(self, models: list[RunningModel]) -> None:
        super().__init__()
        self.models = models

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunningSampled)


class LocalityChecked(Message):
    """Whether the Ollama server runs on this machine (its address resolved in a thread)."""

    def __init__(self, local: bool) -> None:
        super().__init__()
        self.local = local


class StateSaved(Message):
    """llmdeck's state file after a change (a new calibration), or why it could not be saved."""

    def __init__(self, state: State | None, problem: str | None, *, replan: bool = False) -> None:
        super().__init__()
        self.state = state
        self.problem = problem
        self.replan = replan  # the change affects plans (a calibration)


class HistoryOpened(Message):
    """The chat history file is open (or could not be): its chats, and what went wrong."""

    def __init__(self, history: History | None, chats: list[StoredChat], problem: str | None) -> None:
        super().__init__()
        self.history = history
        self.chats = chats
        self.problem = problem
