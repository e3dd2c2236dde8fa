"""`llmdeck doctor`: everything a bug report needs, and what is wrong with the models store."""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from llmdeck import __version__
from llmdeck.config import Setting, Settings
from llmdeck.fit.pick import recommend
from llmdeck.fit.report import FitRequest
from llmdeck.fit.target import build_target
from llmdeck.hardware import HardwareProbe
from llmdeck.history import HistorySummary, history_path, summarize
from llmdeck.store import blob_paths_from_modelfile
from llmdeck.store.findings import writable_by
from llmdeck.store.report import inspect_store

GIB = 1024**3


async def _ask_server(settings: Settings) -> dict[str, Any] | None:
    from llmdeck.ollama_api import OllamaError, OllamaService

    ollama = OllamaService(settings.host.value, connect_timeout_s=settings.connect_timeout_s)
    try:
        version = await ollama.version()
        names = [model.name for model in await ollama.list_models()]
        blob_paths: list[Path] = []
        for name in names:
            try:
                show = await ollama.show(name, verbose=False)
            except OllamaError:
                continue
            blob_paths += blob_paths_from_modelfile(str(show.get("modelfile", "")))
        return {"version": version, "models": names, "blob_paths": blob_paths}
    except OllamaError as error:
        return {"error": str(error)}
    finally:
        await ollama.aclose()


def collect(settings: Settings, probe: HardwareProbe) -> dict[str, Any]:
    try:
        snapshot = probe.snapshot()
    finally:
        probe.close()
    server = asyncio.run(_ask_server(settings)) or {}
    answered = "version" in server
    version = server.get("version")
    best = recommend(build_target(snapshot), FitRequest(ollama_version=version)).full_gpu
    store = inspect_store(
        server.get("blob_paths", ()),
        server.get("models") if answered else None,
        recommended_pull_bytes=best.spec.file_bytes if best else 0,
    )
    decision, contents = store.decision, store.contents
    return {
        "versions": {
            "llmdeck": __version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "textual": _package_version("textual"),
            "ollama_python": _package_version("ollama"),
            "ollama": version,
        },
        "host": {
            "url": settings.host.value,
            "source": settings.host.source,
            "from": settings.host.describe(),
            "answered": answered,
            "error": server.get("error"),
        },
        "hardware": asdict(snapshot),
        "store": {
            "path": str(decision.path),
            "source": decision.source,
            "how": decision.how,
            "evidence": list(decision.evidence),
            "exists": contents.exists,
            "writable": contents.exists and writable_by(decision.path, decision.server_user),
            "free_bytes": store.free_bytes,
            "server_user": decision.server_user,
            "models": [model.name for model in contents.models],
        },
        "findings": [finding.to_json() for finding in store.findings],
        "config": {
            "path": str(settings.config_path) if settings.config_path else None,
            "exists": settings.config_path is not None and settings.config_path.is_file(),
            "problems": list(settings.config_problems),
        },
        "settings": {key: _setting_json(setting) for key, setting in settings.provenance.items()},
        "history": _history_json(summarize(history_path())),
    }


def _history_json(summary: HistorySummary) -> dict[str, Any]:
    return {
        "path": str(summary.path),
        "exists": summary.exists,
        "size_bytes": summary.size_bytes,
        "schema_version": summary.schema_version,
        "chats": summary.chats,
        "messages": summary.messages,
        "problem": summary.problem,
    }


def _setting_json(setting: Setting[object]) -> dict[str, Any]:
    return {
        "value": setting.value,
        "source": setting.source,
        "variable": setting.variable,
        "path": str(setting.path) if setting.path else None,
        "line": setting.line,
        "from": setting.describe(),
    }


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def run(args: argparse.Namespace, settings: Settings, probe: HardwareProbe) -> int:
    report = collect(settings, probe)
    has_error = any(finding["level"] == "error" for finding in report["findings"])
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 1 if has_error else 0
    versions = report["versions"]
    print(f"llmdeck {versions['llmdeck']} · Python {versions['python']} · Textual {versions['textual']}")
    host = report["host"]
    if host["answered"]:
        print(f"Ollama {versions['ollama']} at {host['url']} ({host['from']})")
    else:
        print(f"Ollama not answering at {host['url']} ({host['from']}): {host['error'] or 'not reachable'}")
    hardware = report["hardware"]
    gpus = hardware["gpu"]["gpus"]
    gpu_text = ", ".join(g["name"] for g in gpus) if gpus else hardware["gpu"]["unavailable_reason"]
    memory = hardware["memory"]["total_bytes"] / GIB
    print(f"Hardware: {hardware['cpu']['model']}; {memory:.1f} GiB RAM; {gpu_text}")
    store = report["store"]
    free = (
        f"{store['free_bytes'] / GIB:.1f} GiB free"
        if store["free_bytes"] is not None
        else "free space unknown"
    )
    print(f"\nModels store: {store['path']}")
    print(f"  how llmdeck knows: {store['how']}")
    for line in store["evidence"]:
        print(f"  evidence: {line}")
    print(f"  exists: {store['exists']}, writable by the server: {store['writable']}, {free}")
    print(f"  models on disk: {', '.join(store['models']) or 'none'}")
    _print_settings(report)
    _print_history(report["history"])
    print("\nFindings:" if report["findings"] else "\nFindings: none")
    for finding in report["findings"]:
        print(f"  {finding['level'].upper():7} {finding['code']}: {finding['message']}")
        print(f"          fix: {finding['fix']}")
    return 1 if has_error else 0


def _print_history(history: dict[str, Any]) -> None:
    print(f"\nChat history: {history['path']}")
    if not history["exists"]:
        print("  none yet (it is made with the first prompt)")
    elif history["problem"]:
        print(f"  {history['problem']}")
    else:
        size = history["size_bytes"] / 1_000_000
        print(
            f"  {history['chats']} chats, {history['messages']} messages, {size:.1f} MB,"
            f" schema {history['schema_version']}"
        )


def _print_settings(report: dict[str, Any]) -> None:
    config = report["config"]
    if config["path"] is None:
        print("\nSettings:")
    elif config["exists"]:
        print(f"\nSettings (config file {config['path']}):")
    else:
        print(f"\nSettings (no config file; llmdeck would read {config['path']}):")
    rows = [
        (key, _shown(key, entry["value"]), entry["from"])
        for key, entry in report["settings"].items()
        # Each binding has its own row; the table's row only says there are none.
        if not (key == "keymap" and entry["value"])
    ]
    width = max((len(key) for key, _, _ in rows), default=0)
    value_width = min(max((len(value) for _, value, _ in rows), default=0), 40)
    for key, value, source in rows:
        print(f"  {key:<{width}}  {value:<{value_width}}  {source}")
    problems = config["problems"]
    print("Config problems:" if problems else "Config problems: none")
    for problem in problems:
        print(f"  {problem}")


def _shown(key: str, value: object) -> str:
    if value is None:
        return "Ollama's default" if key == "context_length" else "none"
    if key == "refresh":
        return f"{value:g} s"
    if key == "gpu_overhead":
        return f"{value:g} GiB"
    if isinstance(value, dict):
        return "none" if not value else ", ".join(f"{k} = {v}" for k, v in value.items())
    return str(value)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run `llmdeck doctor`")
