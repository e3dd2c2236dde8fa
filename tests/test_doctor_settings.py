"""`llmdeck doctor` says where every setting came from, and what is wrong with the config file."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers import DATA
from test_cli import llmdeck_command

from llmdeck.config_file import default_config_path

OFFLINE = "127.0.0.1:9"


@pytest.fixture(autouse=True)
def no_ollama_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("OLLAMA_CONTEXT_LENGTH", "OLLAMA_KV_CACHE_TYPE", "OLLAMA_GPU_OVERHEAD"):
        monkeypatch.delenv(variable, raising=False)


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    recorded = str(DATA / "workstation-rtx4090.json")
    command = [*llmdeck_command(), "--hardware", recorded, "--host", OFFLINE, "doctor", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_doctor_lists_each_setting_with_its_value_and_source(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('# llmdeck\ncontext_length = 8192\nrefresh = "fast"\n[keymap]\n"app.quit" = "ctrl+x"\n')
    before = path.read_bytes(), path.stat().st_mtime_ns
    result = doctor("--config", str(path), env={"OLLAMA_KV_CACHE_TYPE": "q4_0"})
    out = result.stdout
    assert f"Settings (config file {path}):" in out
    expected_rows = [
        ("host", "http://127.0.0.1:9", "command line"),
        ("context_length", "8192", f"config file {path}, line 2"),
        ("kv_cache_type", "q4_0", "environment OLLAMA_KV_CACHE_TYPE"),
        ("refresh", "1 s", "default"),
        ("gpu_overhead", "0 GiB", "default"),
        ("theme", "none", "default"),
        ("keymap.app.quit", "ctrl+x", f"config file {path}, line 5"),
    ]
    for key, value, source in expected_rows:
        row = rf"^  {re.escape(key)} +{re.escape(value)} +{re.escape(source)}$"
        assert re.search(row, out, re.MULTILINE), f"no row {key} | {value} | {source} in:\n{out}"
    problem = f'{path}, line 3: refresh must be a number of seconds from 0.1 to 60, not "fast"'
    assert f"Config problems:\n  {problem}\n" in out
    assert f"llmdeck: warning: {problem}" in result.stderr
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_doctor_json_has_the_settings_and_the_config_file(tmp_path: Path) -> None:
    path = default_config_path()
    path.parent.mkdir(parents=True)
    path.write_text("gpu_overhead = 1.5\nthemes = 1\n")
    result = doctor("--json", env={"OLLAMA_HOST": "ignored-by-the-flag"})
    report = json.loads(result.stdout)
    assert report["config"] == {
        "path": str(path),
        "exists": True,
        "problems": [f"{path}, line 2: unknown key themes, ignored (did you mean theme?)"],
    }
    settings = report["settings"]
    assert settings["gpu_overhead"] == {
        "value": 1.5,
        "source": "config file",
        "variable": None,
        "path": str(path),
        "line": 1,
        "from": f"config file {path}, line 1",
    }
    assert settings["host"]["from"] == "command line"
    assert (settings["context_length"]["value"], settings["context_length"]["source"]) == (None, "default")
    assert set(settings) >= {"host", "default_model", "context_length", "kv_cache_type", "refresh", "theme",
                             "gpu_overhead", "keymap"}  # fmt: skip


def test_doctor_says_where_a_config_file_would_be_read() -> None:
    result = doctor()
    assert f"Settings (no config file; llmdeck would read {default_config_path()}):" in result.stdout
    assert "Config problems: none" in result.stdout
    assert result.stderr == ""
