"""`llmdeck fit`: how each model fits this machine (or one described by flags), and what to run.

A stable, scriptable interface: `--json` prints one object per model; errors exit non-zero with
one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from llmdeck.config import KV_CACHE_TYPES, Setting, Settings
from llmdeck.fit.catalog import UnknownModel, load_catalog
from llmdeck.fit.facts import FactsError, spec_from_show
from llmdeck.fit.gpus import UnknownGpu
from llmdeck.fit.pick import recommend
from llmdeck.fit.report import FitRequest, FitRow, fit_model
from llmdeck.fit.spec import ModelSpec
from llmdeck.fit.target import Target, build_target
from llmdeck.fit.versions import VersionError, parse_version, regime_for
from llmdeck.hardware import HardwareProbe
from llmdeck.units import GIB

if TYPE_CHECKING:
    # Imported when a server answers: loading the Ollama client costs half a second, and the
    # `ollama` package reads OLLAMA_HOST as it loads, failing on a value llmdeck reports itself.
    from llmdeck.ollama_api import OllamaService


class FitError(Exception):
    """A user error: one line on stderr and exit status 1."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "models", nargs="*", metavar="MODEL", help="installed model or catalog tag (default: all)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per model")
    # The defaults of these three come from Settings (environment, then config.toml): None here
    # means the flag was not given.
    parser.add_argument(
        "--num-ctx",
        type=_context_length,
        metavar="N",
        help="context length, 0 for Ollama's default (default: $OLLAMA_CONTEXT_LENGTH, else context_length "
        "in config.toml, else Ollama's)",
    )
    parser.add_argument(
        "--kv-cache",
        choices=KV_CACHE_TYPES,
        help="KV cache type (default: $OLLAMA_KV_CACHE_TYPE, else kv_cache_type in config.toml, else f16)",
    )
    parser.add_argument("--flash-attention", action="store_true", help="plan with flash attention on")
    parser.add_argument("--parallel", type=_positive_int, default=1, metavar="N", help="OLLAMA_NUM_PARALLEL")
    parser.add_argument(
        "--gpu", type=_names, default=[], metavar="NAME[,NAME...]", help="plan for these GPUs"
    )
    parser.add_argument(
        "--gpu-free", type=_numbers, default=[], metavar="GIB[,GIB...]", help="free VRAM per GPU"
    )
    parser.add_argument("--ram-free", type=_gib, metavar="GIB", help="free system memory")
    parser.add_argument("--swap-free", type=_gib, metavar="GIB", help="free swap")
    parser.add_argument(
        "--gpu-overhead",
        type=_gib,
        metavar="GIB",
        help="VRAM kept free per GPU (default: $OLLAMA_GPU_OVERHEAD in bytes, else gpu_overhead in "
        "config.toml, else 0)",
    )
    parser.add_argument("--metal", action="store_true", help="the GPU is Apple unified memory")
    parser.add_argument(
        "--ram-bandwidth", type=float, metavar="GBPS", help="system memory bandwidth for the speed estimate"
    )
    parser.add_argument("--ollama-version", metavar="X.Y.Z", help="plan as this Ollama version would")
    parser.add_argument("--host", dest="fit_host", metavar="URL", help="Ollama server to ask for models")


def _one_line(text: str, limit: int = 240) -> str:
    """Scripts read errors line by line: a server's multi-line message becomes one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _context_length(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of tokens: {text}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _gib(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of GiB: {text}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def _numbers(text: str) -> list[float]:
    return [_gib(value) for value in text.split(",")]


@dataclass(frozen=True, slots=True)
class ServerModels:
    """Installed models, as the server lists them or, with `store` set, as read from disk."""

    version: str
    specs: dict[str, ModelSpec]
    failures: dict[str, str]
    store: str | None = None


async def _ask_server(ollama: OllamaService, wanted: Sequence[str]) -> ServerModels | None:
    from llmdeck.fit.projector import measure_projector, projector_paths, with_projector
    from llmdeck.ollama_api import OllamaError, OllamaUnreachable

    try:
        version = await ollama.version()
        sizes = {model.name: model.size_bytes for model in await ollama.list_models()}
        installed = list(sizes)
    except OllamaUnreachable:
        return None
    except OllamaError as error:
        # Something answers, but not as Ollama does: plan from the catalog and say why.
        print(f"llmdeck fit: ignoring the server at {ollama.host}: {_one_line(str(error))}", file=sys.stderr)
        return None
    names = [name for name in installed if not wanted or _matches(name, wanted)]
    specs: dict[str, ModelSpec] = {}
    failures: dict[str, str] = {}
    for name in names:
        try:
            show = await ollama.show(name)
            spec = spec_from_show(name, show)
        except (OllamaError, FactsError) as error:
            failures[name] = str(error)
            continue
        projectors = projector_paths(str(show.get("modelfile", "")))
        specs[name] = with_projector(spec, measure_projector(spec, projectors, sizes.get(name)))
    return ServerModels(version, specs, failures)


def _matches(installed: str, wanted: Sequence[str]) -> bool:
    return any(installed == name or installed == f"{name}:latest" for name in wanted)


def run(args: argparse.Namespace, settings: Settings, probe: HardwareProbe) -> int:
    try:
        return _run(args, settings, probe)
    except (FitError, UnknownModel, UnknownGpu, VersionError, ValueError) as error:
        print(f"llmdeck fit: {_one_line(str(error))}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: Settings, probe: HardwareProbe) -> int:
    if args.ollama_version:
        parse_version(args.ollama_version)
    try:
        snapshot = probe.snapshot()
    finally:
        probe.close()
    target = build_target(
        snapshot,
        gpu_names=args.gpu,
        gpu_free_gib=args.gpu_free,
        ram_free_gib=args.ram_free,
        swap_free_gib=args.swap_free,
        metal=args.metal,
        ram_bandwidth_gbps=args.ram_bandwidth,
    )
    server = _server_models(settings, args.models)
    stored = None if server else _store_models(args.models)
    version = args.ollama_version or (server.version if server else None)
    request = FitRequest(
        num_ctx=settings.num_ctx if args.num_ctx is None else args.num_ctx or None,
        kv_cache_type=args.kv_cache or settings.kv_cache_type,
        flash_attention=True if args.flash_attention else None,
        parallel=args.parallel,
        gpu_overhead_bytes=(
            settings.gpu_overhead_bytes if args.gpu_overhead is None else round(args.gpu_overhead * GIB)
        ),
        ollama_version=version,
    )

    installed = server or stored
    rows: list[FitRow] = []
    if args.models:
        for wanted in args.models:
            spec = _installed(installed, wanted) or _from_catalog(wanted, installed)
            rows.append(fit_model(spec, target, request))
    elif installed:
        rows = [fit_model(spec, target, request) for spec in installed.specs.values()]

    recommendations = None if args.models else recommend(target, request)
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=2))
        return 0
    _print_header(target, settings, server, version, stored, _settings_used(args, settings))
    if installed and installed.failures:
        for name, reason in installed.failures.items():
            print(f"  {name}: not planned ({reason})")
    if rows or args.models:
        _print_rows(rows)
    elif installed:
        print("No model installed. Name catalog models to plan them, e.g. `llmdeck fit llama3.1:8b`.")
    else:
        print("Installed models unknown while Ollama is down. Name models to plan them from the catalog.")
    if recommendations is not None:
        print("\nRecommended from the catalog (at Ollama's default context for each model):")
        _print_recommendation("largest fully on GPU", recommendations.full_gpu)
        _print_recommendation(
            f"largest with partial offload at >= {recommendations.min_tokens_per_s:.0f} tok/s",
            recommendations.partial,
        )
    return 0


def _server_models(settings: Settings, wanted: Sequence[str]) -> ServerModels | None:
    if _nothing_listens(settings.host.value, settings.connect_timeout_s):
        return None
    import httpx

    # A bare connection attempt first: when nothing listens, `fit` answers from the catalog
    # without paying for loading the Ollama client (half a second of imports).
    try:
        httpx.get(f"{settings.host.value}/api/version", timeout=settings.connect_timeout_s)
    except httpx.HTTPError:
        return None
    import asyncio

    return asyncio.run(_ask(settings, wanted))


def _nothing_listens(url: str, timeout_s: float) -> bool:
    """Whether a TCP connection to the server's address is refused (or times out) where nothing
    could take the request elsewhere: then even loading an HTTP client is wasted (a tenth of a
    second and more). A proxy, from the environment or on macOS and Windows from the system's
    settings, is httpx's to find and use, so with one this says False and httpx asks."""
    if sys.platform in ("darwin", "win32") or any(
        name.lower().endswith("_proxy") and value for name, value in os.environ.items()
    ):
        return False
    address = urlsplit(url)
    if address.hostname is None or address.port is None:
        return False
    try:
        # httpx's own connect (httpcore's sync backend) is this same call.
        with socket.create_connection((address.hostname, address.port), timeout=timeout_s):
            return False
    except OSError:
        return True


async def _ask(settings: Settings, wanted: Sequence[str]) -> ServerModels | None:
    from llmdeck.ollama_api import OllamaService

    ollama = OllamaService(settings.host.value, connect_timeout_s=settings.connect_timeout_s)
    try:
        return await _ask_server(ollama, wanted)
    finally:
        await ollama.aclose()


def _store_models(wanted: Sequence[str]) -> ServerModels | None:
    """With the server down, the models on disk: the store Ollama would use, read directly."""
    from llmdeck.store import locate, observe, read_store
    from llmdeck.store.specs import spec_from_store

    decision = locate(observe())
    contents = read_store(decision.path)
    if not contents.exists:
        return None
    specs: dict[str, ModelSpec] = {}
    failures: dict[str, str] = {}
    for model in contents.models:
        if wanted and not _matches(model.name, wanted):
            continue
        try:
            specs[model.name] = spec_from_store(model)
        except (FactsError, ValueError) as error:
            failures[model.name] = str(error)
    return ServerModels(version="", specs=specs, failures=failures, store=str(decision.path))


def _installed(server: ServerModels | None, wanted: str) -> ModelSpec | None:
    if server is None:
        return None
    for name, spec in server.specs.items():
        if name == wanted or name == f"{wanted}:latest":
            return spec
    if wanted in server.failures:
        raise FitError(f"{wanted}: {server.failures[wanted]}")
    return None


def _from_catalog(wanted: str, server: ServerModels | None) -> ModelSpec:
    try:
        entry, quant, tag = load_catalog().resolve(wanted)
    except UnknownModel as error:
        where = "not installed on the server, and " if server else ""
        raise FitError(f"unknown model {wanted!r}: {where}{error}") from None
    return entry.spec(quant, tag)


def _print_header(
    target: Target,
    settings: Settings,
    server: ServerModels | None,
    version: str | None,
    stored: ServerModels | None,
    settings_used: Sequence[str],
) -> None:
    print("Machine:")
    for line in target.provenance:
        print(f"  {line}")
    if server:
        print(f"Ollama {server.version} at {settings.host.value}")
    elif stored:
        print(f"Ollama not reachable at {settings.host.value}: installed models read from {stored.store}")
    else:
        print(f"Ollama not reachable at {settings.host.value}: planning from the catalog only")
    for line in settings_used:
        print(line)
    regime = regime_for(version, "llama")
    assumed = version or "unknown (pass --ollama-version)"
    print(f"Placement as Ollama {assumed} does it: {regime}\n")


def _settings_used(args: argparse.Namespace, settings: Settings) -> list[str]:
    """Planning options that came from the environment or config.toml, not from a flag.

    A plan at 32k context because of a line in a file the user forgot is a surprise; naming the
    file and line makes it a setting.
    """
    flags = {
        "context_length": args.num_ctx,
        "kv_cache_type": args.kv_cache,
        "gpu_overhead": args.gpu_overhead,
    }
    used = [
        (key, setting)
        for key, flag in flags.items()
        if flag is None
        and (setting := settings.provenance.get(key)) is not None
        and setting.source != "default"
    ]
    return [f"Using {key} {_shown(key, setting)} from {setting.describe()}" for key, setting in used]


def _shown(key: str, setting: Setting[object]) -> str:
    if key == "context_length" and setting.value is None:
        return "0 (Ollama's default)"
    return (
        f"{setting.value:g} GiB"
        if key == "gpu_overhead" and isinstance(setting.value, float)
        else str(setting.value)
    )


def _print_rows(rows: Sequence[FitRow]) -> None:
    width = max(len("MODEL"), *(len(row.spec.name) for row in rows))
    print(
        f"{'MODEL':<{width}}  {'SOURCE':<7} {'QUANT':<9} {'CTX':>6} {'GPU LAYERS':>10} "
        f"{'SIZE':>8} {'VRAM':>8}  {'PROCESSOR':<16} {'VERDICT':<8} {'TOK/S':>6}"
    )
    for row in rows:
        plan = row.plan
        speed = f"{row.tokens_per_s:.1f}" if row.tokens_per_s is not None else "?"
        layers = f"{plan.num_gpu}/{plan.layers_total}"
        memory = f"{plan.size / GIB:>6.1f}Gi {plan.size_vram / GIB:>6.1f}Gi"
        print(
            f"{row.spec.name:<{width}}  {row.spec.source:<7} {row.spec.file_type:<9} {plan.num_ctx:>6} "
            f"{layers:>10} {memory}  {plan.processor:<16} {plan.verdict:<8} {speed:>6}"
        )
        for note in plan.notes:
            print(f"{'':<{width}}  note: {note}")


def _print_recommendation(label: str, row: FitRow | None) -> None:
    if row is None:
        print(f"  {label}: none")
        return
    speed = f", about {row.tokens_per_s:.0f} tok/s" if row.tokens_per_s else ""
    layers = f"{row.plan.num_gpu}/{row.plan.layers_total} layers on GPU"
    print(
        f"  {label}: {row.spec.name} ({row.spec.file_type}, {layers}, {row.plan.size / GIB:.1f} GiB{speed})"
    )
