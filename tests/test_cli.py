"""The installed `llmdeck` command, run as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DATA

import llmdeck
from llmdeck import cli
from llmdeck.config import Settings
from llmdeck.config_file import default_config_path

RECORDED = str(DATA / "workstation-rtx4090.json")


@pytest.fixture(autouse=True)
def no_ollama_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's own Ollama settings must not leak into what these tests expect."""
    for variable in ("OLLAMA_CONTEXT_LENGTH", "OLLAMA_KV_CACHE_TYPE", "OLLAMA_GPU_OVERHEAD"):
        monkeypatch.delenv(variable, raising=False)


def llmdeck_command() -> list[str]:
    # The console script installed beside this Python, as `pip install .` puts it.
    script = Path(sys.executable).parent / "llmdeck"
    if script.exists():
        return [str(script)]
    found = shutil.which("llmdeck")
    assert found, "the llmdeck console script is not installed"
    return [found]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*llmdeck_command(), *args], capture_output=True, text=True, timeout=60)


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"llmdeck {llmdeck.__version__}"


def test_help_names_the_options() -> None:
    result = run("--help")
    assert result.returncode == 0
    for option in ("--host", "--hardware", "--config", "--refresh", "--version", "OLLAMA_HOST"):
        assert option in result.stdout


def test_hardware_json_is_a_snapshot_that_hardware_flag_loads(tmp_path: Path) -> None:
    result = run("hardware", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["memory"]["total_bytes"] > 0
    assert data["gpu"]["gpus"] or data["gpu"]["unavailable_reason"]
    recorded = tmp_path / "this-machine.json"
    recorded.write_text(result.stdout)
    replayed = run("--hardware", str(recorded), "hardware", "--json")
    assert json.loads(replayed.stdout)["memory"] == data["memory"]


def test_hardware_of_another_machine() -> None:
    result = run("--hardware", str(DATA / "workstation-rtx4090.json"), "hardware")
    assert result.returncode == 0
    assert "GPU 0 NVIDIA GeForce RTX 4090: 22.9 GiB free of 24.0 GiB" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--host", "ftp://box"), "unsupported scheme 'ftp'"),
        (("--host", "box:99999"), "invalid port"),
        (("--hardware", "/nonexistent/box.json"), "cannot read hardware snapshot"),
        (("--refresh", "0.01"), "0.01 s is outside 0.1 to 60 seconds"),
        (("--refresh", "often"), "not a number of seconds: 'often'"),
    ],
)
def test_bad_input_is_one_clear_line_and_a_nonzero_exit(args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("llmdeck: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def write_config(text: str, path: Path | None = None) -> Path:
    path = path or default_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_broken_config_is_a_warning_and_the_command_still_runs() -> None:
    # The default location, under the XDG_CONFIG_HOME conftest sets: the subprocess finds it too.
    path = write_config('refresh = "fast"\nhost = "ftp://box"\n')
    before = path.read_bytes(), path.stat().st_mtime_ns
    result = run("--hardware", RECORDED, "hardware")
    assert result.returncode == 0
    assert "GPU 0 NVIDIA GeForce RTX 4090" in result.stdout
    assert result.stderr.splitlines() == [
        f'llmdeck: warning: {path}, line 1: refresh must be a number of seconds from 0.1 to 60, not "fast"',
        f"llmdeck: warning: {path}, line 2: host: unsupported scheme 'ftp' in Ollama address 'ftp://box' "
        "(use http or https)",
    ]
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


@pytest.mark.parametrize(
    ("where", "read"),
    [
        (("--config", "{a}", "hardware"), "a"),
        (("hardware", "--config", "{a}"), "a"),
        (("--config", "{a}", "hardware", "--config", "{b}"), "b"),  # the later one, as with any flag
    ],
)
def test_config_flag_before_or_after_the_command(tmp_path: Path, where: tuple[str, ...], read: str) -> None:
    # Each file has a problem, so the warning shows which one was read.
    files = {name: write_config(f"{name}_setting = 1\n", tmp_path / f"{name}.toml") for name in "ab"}
    write_config("default_setting = 1\n")
    args = [arg.format(**{name: str(path) for name, path in files.items()}) for arg in where]
    result = run("--hardware", RECORDED, *args)
    assert result.returncode == 0, result.stderr
    [warning] = result.stderr.splitlines()
    assert warning.startswith(f"llmdeck: warning: {files[read]}, line 1: unknown key {read}_setting")


def test_a_missing_config_named_on_the_command_line_is_a_warning(tmp_path: Path) -> None:
    missing = tmp_path / "typo.toml"
    result = run("--config", str(missing), "--hardware", RECORDED, "hardware")
    assert result.returncode == 0
    assert result.stderr == f"llmdeck: warning: {missing}: no such config file; llmdeck uses the defaults\n"


def test_the_tui_gets_the_refresh_flag_over_the_file_and_the_problems_to_show(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config("refresh = 2\ntheme = 5\n")
    started: list[Settings] = []
    monkeypatch.setattr(cli, "_run_tui", lambda settings, probe: started.append(settings) or 0)

    assert cli.main(["--hardware", RECORDED]) == 0
    assert cli.main(["--hardware", RECORDED, "--refresh", "0.25"]) == 0
    from_file, from_flag = started
    assert from_file.hardware_refresh_s == 2.0
    assert from_file.provenance["refresh"].describe() == f"config file {path}, line 1"
    assert from_flag.hardware_refresh_s == 0.25
    assert from_flag.provenance["refresh"].describe() == "command line"
    # The TUI shows the problems itself; nothing is printed over the screen it is about to draw.
    assert from_file.config_problems == (
        f'{path}, line 2: theme must be a theme name such as "llmdeck-dark", not 5',
    )
    assert capsys.readouterr().err == ""


def test_a_bad_ollama_host_in_the_environment_still_stops_llmdeck() -> None:
    # Unlike the other variables: a wrong server is worse than no start (README, "Which Ollama").
    result = subprocess.run(
        [*llmdeck_command(), "--hardware", RECORDED, "hardware"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OLLAMA_HOST": "box:99999"},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("llmdeck: invalid port '99999'")


def test_a_bad_ollama_host_does_not_crash_when_host_is_given() -> None:
    # The ollama package reads OLLAMA_HOST when imported and raises on a bad port; llmdeck was told
    # which host to use and must not fall over on the one it is not using.
    env = {**os.environ, "OLLAMA_HOST": "box:99999"}
    script = (
        "import os, llmdeck.ollama_api as api; api.load_client_libraries();"
        " print(api.ollama.__name__, os.environ['OLLAMA_HOST'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ollama", "box:99999"]
