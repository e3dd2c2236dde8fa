"""The model list each server last gave, kept for the next start's first screen."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmdeck.model_cache import HOSTS_KEPT, load_seen, model_cache_path, save_seen
from llmdeck.ollama_api import InstalledModel

LLAMA = InstalledModel("llama3.1:8b", 4_920_753_328, "8.0B", "Q4_K_M", "llama", "46e0c10c039e")
QWEN = InstalledModel("qwen2.5:14b", 8_988_124_069, "14.8B", "Q4_K_M", "qwen2", "7cdf5a0187d5")
HOST = "http://127.0.0.1:11434"
SEEN = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def test_a_servers_list_comes_back_as_it_was_saved_and_only_for_that_server(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "models.json"
    save_seen(path, HOST, [QWEN, LLAMA], now=SEEN)
    save_seen(path, "http://gpu-box:11434", [LLAMA], now=SEEN + timedelta(hours=1))

    seen = load_seen(path, HOST)
    assert seen is not None
    assert seen.models == [QWEN, LLAMA]
    assert seen.seen_at == SEEN
    other = load_seen(path, "http://gpu-box:11434")
    assert other is not None and other.models == [LLAMA]
    assert load_seen(path, "http://never-seen:11434") is None


def test_saving_again_replaces_that_servers_list(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    save_seen(path, HOST, [QWEN, LLAMA], now=SEEN)
    save_seen(path, HOST, [LLAMA], now=SEEN + timedelta(days=1))
    seen = load_seen(path, HOST)
    assert seen is not None and seen.models == [LLAMA] and seen.seen_at == SEEN + timedelta(days=1)


def test_only_the_servers_seen_last_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    hosts = [f"http://host-{index}:11434" for index in range(HOSTS_KEPT + 1)]
    for host in hosts:
        save_seen(path, host, [LLAMA], now=SEEN)
    save_seen(path, hosts[1], [QWEN], now=SEEN)  # seen again: now the latest

    assert load_seen(path, hosts[0]) is None  # the oldest went
    assert all(load_seen(path, host) is not None for host in hosts[1:])
    saved = json.loads(path.read_text())["hosts"]
    assert len(saved) == HOSTS_KEPT
    save_seen(path, "http://one-more:11434", [LLAMA], now=SEEN)
    assert load_seen(path, hosts[1]) is not None  # refreshed, so hosts[2] went instead
    assert load_seen(path, hosts[2]) is None


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"format": 99, "hosts": {}}',
        '{"format": 1, "hosts": []}',
        '{"format": 1, "hosts": {"HOST": {"models": []}}}',
        '{"format": 1, "hosts": {"HOST": {"seen_at": "yesterday", "models": []}}}',
        '{"format": 1, "hosts": {"HOST": {"seen_at": "2026-11-20T09:30:00", "models": []}}}',
        '{"format": 1, "hosts": {"HOST": {"seen_at": "2026-11-20T09:30:00+00:00", "models": [1]}}}',
        '{"format": 1, "hosts": {"HOST": {"seen_at": "2026-11-20T09:30:00+00:00",'
        ' "models": [{"name": "x", "size_bytes": "big", "parameter_size": "", "quantization": "",'
        ' "family": "", "digest": ""}]}}}',
    ],
)
def test_an_unusable_file_is_as_if_nothing_was_seen_and_the_next_save_mends_it(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "models.json"
    path.write_text(content.replace("HOST", HOST))
    assert load_seen(path, HOST) is None
    save_seen(path, HOST, [LLAMA], now=SEEN)
    seen = load_seen(path, HOST)
    assert seen is not None and seen.models == [LLAMA]


def test_the_file_is_private_and_lives_in_llmdecks_cache_folder(isolated_home: Path) -> None:
    path = model_cache_path()
    assert path.is_relative_to(isolated_home / ".cache" / "llmdeck")
    save_seen(path, HOST, [LLAMA])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [entry.name for entry in path.parent.iterdir()] == ["models.json"]  # no temporary left
