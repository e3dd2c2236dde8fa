"""`llmdeck fit` as scripts use it: the installed command, its JSON and its errors."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers import DATA
from ollama_standin import OllamaStandIn
from test_cli import llmdeck_command

RECORDED = str(DATA / "workstation-rtx4090.json")
OFFLINE = "127.0.0.1:9"  # nothing listens on the discard port
JSON_KEYS = {"model", "num_ctx", "layers_total", "num_gpu", "size", "size_vram", "processor", "verdict",
             "tokens_per_s", "source"}  # fmt: skip


@pytest.fixture(autouse=True)
def no_ollama_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's own Ollama settings must not change the plans these tests expect."""
    for variable in ("OLLAMA_CONTEXT_LENGTH", "OLLAMA_KV_CACHE_TYPE", "OLLAMA_GPU_OVERHEAD"):
        monkeypatch.delenv(variable, raising=False)


def fit(
    *args: str, host: str = OFFLINE, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [*llmdeck_command(), "--hardware", RECORDED, "--host", host, "fit", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def fit_json(*args: str, host: str = OFFLINE, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    result = fit(*args, "--json", host=host, env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    for row in rows:
        assert set(row) >= JSON_KEYS
    return rows


def test_installed_models_are_planned_from_the_servers_own_metadata(standin: OllamaStandIn) -> None:
    rows = fit_json(host=standin.url)
    assert [row["model"] for row in rows] == list(standin.models)
    assert {row["source"] for row in rows} == {"server"}
    # The server's tensor table and the catalog describe the same file: the same plan.
    [from_catalog] = fit_json("llama3.1:8b")
    [from_server] = [row for row in rows if row["model"] == "llama3.1:8b"]
    for key in ("size", "size_vram", "num_gpu", "layers_total", "processor", "verdict"):
        assert from_server[key] == from_catalog[key], key
    assert from_catalog["source"] == "catalog"


def test_a_vision_projector_beside_the_model_counts_in_its_plan(
    standin: OllamaStandIn, tmp_path: Path
) -> None:
    [before] = [row for row in fit_json(host=standin.url) if row["model"] == "llama3.1:8b"]
    digest = "f" * 64
    projector = tmp_path / "blobs" / f"sha256-{digest}"
    projector.parent.mkdir()
    projector.write_bytes(b"p" * 700_000)
    standin.store_root = str(tmp_path)
    standin.models["llama3.1:8b"] = replace(standin.models["llama3.1:8b"], projector_digest=digest)
    [after] = [row for row in fit_json(host=standin.url) if row["model"] == "llama3.1:8b"]
    assert after["size"] == before["size"] + 700_000


def test_a_70b_partly_on_a_24_gb_card() -> None:
    [row] = fit_json("llama3.1:70b", "--gpu", "NVIDIA GeForce RTX 4090", "--gpu-free", "22.9")
    assert row["verdict"] == "partial"
    assert 30 < row["num_gpu"] < 81 and row["layers_total"] == 81
    assert row["size_vram"] <= 22.9 * 1024**3
    cpu = round((row["size"] - row["size_vram"]) / row["size"] * 100)
    assert row["processor"] == f"{cpu}%/{100 - cpu}% CPU/GPU"
    assert 0.5 < row["tokens_per_s"] < 5


def test_hardware_flags_plan_for_another_machine() -> None:
    [one] = fit_json("llama3.1:70b", "--gpu", "rtx 3090")
    [two] = fit_json("llama3.1:70b", "--gpu", "rtx 3090,RTX3090")  # spaces and case do not matter
    assert one["verdict"] == "partial" and two["verdict"] == "gpu"
    assert two["layers_per_gpu"][0] > 0 and two["layers_per_gpu"][1] > 0
    [cpu] = fit_json("llama3.2:3b", "--gpu-free", "0.2")
    assert cpu["verdict"] == "cpu" and cpu["processor"] == "100% CPU"
    [none] = fit_json("llama3.1:405b", "--gpu-free", "0.2", "--ram-free", "16", "--swap-free", "0")
    assert none["verdict"] == "none" and none["tokens_per_s"] is None
    [metal] = fit_json("qwen2.5:32b", "--gpu", "Apple M2 Max (38-core GPU)", "--metal")
    assert metal["verdict"] == "gpu"


def test_context_and_kv_cache_options_change_the_plan() -> None:
    [small] = fit_json("qwen2.5:32b", "--num-ctx", "4096")
    [large] = fit_json("qwen2.5:32b", "--num-ctx", "32768")
    [quantized] = fit_json("qwen2.5:32b", "--num-ctx", "32768", "--kv-cache", "q8_0", "--flash-attention")
    assert (small["num_ctx"], large["num_ctx"]) == (4096, 32768)
    assert large["size"] > small["size"]
    assert quantized["kv_cache_bytes"] * 2 == large["kv_cache_bytes"]


def test_the_ollama_version_sets_the_default_context_and_the_regime() -> None:
    [old] = fit_json("llama3.1:8b", "--ollama-version", "0.6.2")
    [tiered] = fit_json("llama3.1:8b", "--ollama-version", "0.15.5")  # a 24 GiB card: 32k
    [fit_regime] = fit_json("llama3.1:8b", "--ollama-version", "0.30.0")
    assert (old["num_ctx"], tiered["num_ctx"]) == (2048, 32768)
    assert (old["regime"], fit_regime["regime"]) == ("estimator", "fit")


def test_without_a_model_it_recommends() -> None:
    result = fit()
    assert result.returncode == 0, result.stderr
    assert "largest fully on GPU:" in result.stdout
    assert "largest with partial offload at >= 5 tok/s:" in result.stdout


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (("nosuchmodel:7b",), "unknown model 'nosuchmodel:7b'", 1),
        (("llama3.1", "--gpu", "RTX 9999"), "unknown GPU 'RTX 9999'", 1),
        (("llama3.1", "--kv-cache", "q9"), "invalid choice: 'q9'", 2),
        (("llama3.1", "--ollama-version", "latest"), "not an Ollama version", 1),
        (("llama3.1", "--gpu", "rtx 3090,rtx 3090", "--gpu-free", "1,2,3"), "--gpu-free has 3 values", 1),
        (("llama3.1", "--ram-free", "-4"), "must not be negative", 2),
    ],
)
def test_errors_are_one_line_and_non_zero(args: tuple[str, ...], message: str, code: int) -> None:
    result = fit(*args)
    assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_a_server_that_is_not_ollama_is_one_line_and_the_catalog_still_answers(
    standin: OllamaStandIn,
) -> None:
    standin.server.clear()  # answers 404 to everything, like a web server that is not Ollama
    result = fit("llama3.1:8b", "--json", host=standin.url)
    assert result.returncode == 0
    assert json.loads(result.stdout)[0]["source"] == "catalog"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "ignoring the server" in lines[0]


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_context_and_kv_cache_come_from_the_config_file_and_the_flags_win(tmp_path: Path) -> None:
    config = str(config_file(tmp_path, 'context_length = 16384\nkv_cache_type = "q8_0"\n'))
    [from_file] = fit_json("qwen2.5:32b", "--flash-attention", "--config", config)
    [same_by_flags] = fit_json("qwen2.5:32b", "--flash-attention", "--num-ctx", "16384", "--kv-cache", "q8_0")
    [flags_win] = fit_json("qwen2.5:32b", "--flash-attention", "--config", config, "--num-ctx", "4096",
                           "--kv-cache", "f16")  # fmt: skip
    [ollamas_default] = fit_json("qwen2.5:32b", "--flash-attention", "--config", config, "--num-ctx", "0")
    [no_config] = fit_json("qwen2.5:32b", "--flash-attention")
    assert (from_file["num_ctx"], from_file["kv_cache_type"]) == (16384, "q8_0")
    assert {key: from_file[key] for key in JSON_KEYS} == {key: same_by_flags[key] for key in JSON_KEYS}
    assert (flags_win["num_ctx"], flags_win["kv_cache_type"]) == (4096, "f16")
    assert ollamas_default["num_ctx"] == no_config["num_ctx"] != 16384


def test_the_environment_beats_the_config_file(tmp_path: Path) -> None:
    config = str(config_file(tmp_path, "context_length = 16384\n"))
    [row] = fit_json("llama3.1:8b", "--config", config, env={"OLLAMA_CONTEXT_LENGTH": "8192"})
    assert row["num_ctx"] == 8192


def test_gpu_overhead_from_the_config_file_leaves_less_vram_for_layers(tmp_path: Path) -> None:
    config = str(config_file(tmp_path, "gpu_overhead = 6\n"))
    card = ("llama3.1:70b", "--gpu", "NVIDIA GeForce RTX 4090", "--gpu-free", "22.9")
    [plain] = fit_json(*card)
    [reserved] = fit_json(*card, "--config", config)
    [flag_wins] = fit_json(*card, "--config", config, "--gpu-overhead", "0")
    assert reserved["num_gpu"] < plain["num_gpu"] == flag_wins["num_gpu"]


def test_the_table_says_which_settings_came_from_the_config_file(tmp_path: Path) -> None:
    path = config_file(tmp_path, "# mine\ncontext_length = 8192\n")
    result = fit("llama3.1:8b", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert f"Using context_length 8192 from config file {path}, line 2" in result.stdout.splitlines()
    assert "Using" not in fit("llama3.1:8b", "--config", str(path), "--num-ctx", "4096").stdout


def test_a_broken_config_file_warns_and_fit_still_plans(tmp_path: Path) -> None:
    path = config_file(tmp_path, 'context_length = "big"\nkv_cache_type = "q8_0"\n')
    result = fit("llama3.1:8b", "--json", "--flash-attention", "--config", str(path))
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        f"llmdeck: warning: {path}, line 1: context_length must be a whole number of tokens from 0 "
        '(Ollama\'s default) to 16777216, not "big"'
    ]
    [row] = json.loads(result.stdout)
    assert row["kv_cache_type"] == "q8_0"  # the good key still applies
