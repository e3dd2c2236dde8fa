"""The same calls against a real Ollama, when one is reachable (never in this project's CI).

Point it at a server with LLMDECK_REAL_OLLAMA=URL; otherwise http://127.0.0.1:11434 is tried.
"""

from __future__ import annotations

import os

import httpx
import pytest

from llmdeck.config import normalize_host
from llmdeck.ollama_api import OllamaService

HOST = normalize_host(os.environ.get("LLMDECK_REAL_OLLAMA", ""))


def reachable(host: str) -> bool:
    try:
        return httpx.get(f"{host}/api/version", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


pytestmark = [
    pytest.mark.real_ollama,
    pytest.mark.skipif(not reachable(HOST), reason=f"no Ollama answers at {HOST}"),
]


async def test_real_server_lists_models_and_streams_with_timings() -> None:
    service = OllamaService(HOST)
    try:
        assert await service.version()
        models = await service.list_models()
        if not models:
            pytest.skip("the real server has no model installed")
        smallest = min(models, key=lambda model: model.size_bytes)
        chunks = [
            chunk
            async for chunk in service.chat(
                smallest.name, [{"role": "user", "content": "Say hi."}], {"num_predict": 8}
            )
        ]
        final = chunks[-1].stats
        assert final is not None
        assert final.eval_count and final.eval_duration_ns and final.eval_duration_ns > 0
    finally:
        await service.aclose()
