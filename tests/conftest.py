from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers import DATA
from ollama_standin import OllamaStandIn, start_standin

from llmdeck.hardware import HardwareSnapshot, StaticProbe
from llmdeck.ollama_api import OllamaService


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads or writes the real home directory or the user's Ollama settings."""
    home = tmp_path / "home"
    for variable, folder in {
        "HOME": home,
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_DATA_HOME": home / ".local/share",
        "XDG_STATE_HOME": home / ".local/state",
        "XDG_CACHE_HOME": home / ".cache",
    }.items():
        folder.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(variable, str(folder))
    for variable in (
        "OLLAMA_HOST",
        "OLLAMA_API_KEY",
        "OLLAMA_MODELS",
        "NO_COLOR",
        # The user's Ollama settings change llmdeck's plans: none of them may leak into a test.
        "OLLAMA_CONTEXT_LENGTH",
        "OLLAMA_KV_CACHE_TYPE",
        "OLLAMA_GPU_OVERHEAD",
    ):
        monkeypatch.delenv(variable, raising=False)
    return home


@pytest.fixture
def standin() -> Iterator[OllamaStandIn]:
    server = start_standin()
    yield server
    server.server.clear()
    server.server.stop()


@pytest.fixture
async def ollama(standin: OllamaStandIn) -> AsyncIterator[OllamaService]:
    service = OllamaService(standin.url, connect_timeout_s=2.0)
    yield service
    await service.aclose()


@pytest.fixture
def recorded_snapshot() -> HardwareSnapshot:
    return HardwareSnapshot.load(DATA / "workstation-rtx4090.json")


@pytest.fixture
def recorded_probe(recorded_snapshot: HardwareSnapshot) -> StaticProbe:
    return StaticProbe(recorded_snapshot)
