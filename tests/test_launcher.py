"""Starting `ollama serve`: tested at the process boundary, with a fake `ollama` on PATH that
records how it was started and then serves the loopback API where it was told to."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from helpers import fast_settings, free_port, wait_until
from ollama_standin import OllamaStandIn

from llmdeck.hardware import StaticProbe
from llmdeck.launcher import LaunchError, ServeLauncher, bind_address, find_ollama, running_servers
from llmdeck.ollama_api import OllamaService
from llmdeck.ui.app import LlmdeckApp, OfflineBanner, create_app
from llmdeck.ui.log_screen import LogScreen
from llmdeck.ui.models_pane import ModelsPane

TESTS = Path(__file__).parent

FAKE_OLLAMA = """#!{python}
import json, os, signal, sys, threading
sys.path.insert(0, {tests!r})
with open({record!r}, "w") as record:
    json.dump({{"argv": sys.argv[1:], "OLLAMA_HOST": os.environ.get("OLLAMA_HOST"),
               "OLLAMA_MODELS": os.environ.get("OLLAMA_MODELS"), "pid": os.getpid()}}, record)
from ollama_standin import start_standin
host, port = os.environ["OLLAMA_HOST"].rsplit(":", 1)
standin = start_standin(int(port))
print("Listening on", os.environ["OLLAMA_HOST"], flush=True)
def stop(*_):
    standin.server.stop()
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
threading.Event().wait()
"""


@pytest.fixture
def fake_ollama(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake `ollama` first on PATH; returns the file where it records its start."""
    if running_servers():
        pytest.skip("a real ollama serve runs on this machine: llmdeck rightly refuses to start another")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "started.json"
    executable = bin_dir / "ollama"
    executable.write_text(FAKE_OLLAMA.format(python=sys.executable, tests=str(TESTS), record=str(record)))
    executable.chmod(executable.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return record


def offline_app(port: int, probe: StaticProbe) -> LlmdeckApp:
    host = f"http://127.0.0.1:{port}"
    return create_app(OllamaService(host, connect_timeout_s=0.5), probe, fast_settings(host))


def read_json(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text()))


def started_at_all(record: Path) -> bool:
    return record.exists()


def banner_text(app: LlmdeckApp) -> str:
    return str(app.query_one(OfflineBanner).render())


async def test_f5_starts_ollama_serve_and_llmdeck_stops_it_on_exit(
    fake_ollama: Path, recorded_probe: StaticProbe, isolated_home: Path
) -> None:
    port = free_port()
    app = offline_app(port, recorded_probe)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: "Press F5 to start ollama serve" in banner_text(app))
        await wait_until(lambda: app.store_path is not None)  # the store check has decided
        await pilot.press("f5")
        await wait_until(lambda: app.query_one(ModelsPane).row_count == 4, timeout=20)
        assert not app.query_one(OfflineBanner).has_class("shown")
        started = read_json(fake_ollama)
        assert started["argv"] == ["serve"]
        assert started["OLLAMA_HOST"] == f"127.0.0.1:{port}"  # where llmdeck looks for it
        assert started["OLLAMA_MODELS"] == str(isolated_home / ".ollama" / "models")  # the store check's
        log = isolated_home / ".local/state/llmdeck/ollama-serve.log"
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        await wait_until(lambda: "Listening on" in log.read_text())
        await pilot.press("f9")
        assert isinstance(app.screen, LogScreen)
        await pilot.press("escape")
    # Started by llmdeck, so stopped with it.
    pid = int(str(started["pid"]))
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_a_server_that_answers_is_never_started_twice(
    fake_ollama: Path, standin: OllamaStandIn, recorded_probe: StaticProbe
) -> None:
    app = create_app(OllamaService(standin.url), recorded_probe, fast_settings(standin.url))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: app.query_one(ModelsPane).row_count == 4)
        await pilot.press("f5")  # not offered while a server answers: nothing happens
        await pilot.pause(0.5)
    assert not started_at_all(fake_ollama)


async def test_without_ollama_on_path_the_banner_does_not_offer_it(
    tmp_path: Path, recorded_probe: StaticProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    app = offline_app(free_port(), recorded_probe)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: app.query_one(OfflineBanner).has_class("shown"))
        assert "F5" not in banner_text(app)
        await pilot.press("f5")
        await wait_until(lambda: any("No ollama executable" in str(n.message) for n in app._notifications))


def test_a_second_serve_is_refused_while_one_runs(fake_ollama: Path, tmp_path: Path) -> None:
    executable = find_ollama()
    assert executable is not None and executable.parent == tmp_path / "bin"
    first = ServeLauncher(executable, f"http://127.0.0.1:{free_port()}", log_path=tmp_path / "one.log")
    first.start()
    try:
        # Another llmdeck (or the user) looking at another port must not start a second server.
        second = ServeLauncher(executable, f"http://127.0.0.1:{free_port()}", log_path=tmp_path / "two.log")
        with pytest.raises(LaunchError, match="already running"):
            second.start()
    finally:
        first.stop()
        second.stop()  # had it started after all, it must not outlive the test
    assert not first.running


def test_the_server_listens_where_llmdeck_looks() -> None:
    assert bind_address("http://127.0.0.1:11500") == "127.0.0.1:11500"
    assert bind_address("http://[::1]:11434") == "::1:11434"
    environment = ServeLauncher(Path("/x/ollama"), "http://0.0.0.0:8080", Path("/srv/models")).environment(
        {"PATH": "/bin", "OLLAMA_MODELS": "/elsewhere"}
    )
    assert environment == {"PATH": "/bin", "OLLAMA_HOST": "0.0.0.0:8080", "OLLAMA_MODELS": "/srv/models"}


def test_nothing_is_run_through_a_shell(
    fake_ollama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[object, dict[str, object]]] = []
    real_popen = subprocess.Popen

    def recording_popen(args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        calls.append((args, kwargs))
        return real_popen(args, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    launcher = ServeLauncher(find_ollama() or Path("ollama"), f"http://127.0.0.1:{free_port()}")
    launcher.log_path = tmp_path / "serve.log"
    launcher.start()
    launcher.stop()
    args, kwargs = calls[0]
    assert isinstance(args, list) and args[1:] == ["serve"]
    assert not kwargs.get("shell")
