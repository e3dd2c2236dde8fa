"""The installed `llmdeck` command, run as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DATA

import llmdeck


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
    for option in ("--host", "--hardware", "--version", "OLLAMA_HOST"):
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
    ],
)
def test_bad_input_is_one_clear_line_and_a_nonzero_exit(args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("llmdeck: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
