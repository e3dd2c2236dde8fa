"""The `llmdeck` command. Textual is imported only when the TUI actually starts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from llmdeck import __version__, fit_cli
from llmdeck.config import DEFAULT_REFRESH_S, HostError, Settings, check_refresh, load_settings
from llmdeck.config_file import default_config_path
from llmdeck.hardware import HardwareProbe, HardwareSnapshot, SnapshotError, StaticProbe, SystemProbe


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, as scripts calling llmdeck expect."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="llmdeck",
        description=(
            "Which local model can this machine run, and how fast? Shows the hardware, the models "
            "installed in Ollama, and a chat with live tokens per second."
        ),
        epilog="Run without a command to open the terminal UI.",
    )
    parser.add_argument("--version", action="version", version=f"llmdeck {__version__}")
    parser.add_argument(
        "--host",
        metavar="URL",
        help="Ollama server address (default: $OLLAMA_HOST, else host in config.toml, else "
        "http://127.0.0.1:11434)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help=f"read settings from FILE instead of {default_config_path()} (llmdeck never writes it)",
    )
    parser.add_argument(
        "--hardware",
        metavar="FILE",
        type=Path,
        help="use a recorded hardware snapshot (from `llmdeck hardware --json`) instead of this machine",
    )
    parser.add_argument(
        "--refresh",
        metavar="SECONDS",
        type=_refresh_interval,
        help=f"how often the gauges are sampled and redrawn (default: refresh in config.toml, else "
        f"{DEFAULT_REFRESH_S:g}; 0.1 to 60)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    hardware = commands.add_parser("hardware", help="print this machine's CPU, memory and GPUs")
    _add_config_flag(hardware)
    hardware.add_argument("--json", action="store_true", help="print a snapshot --hardware can load")
    fit = commands.add_parser(
        "fit",
        help="how each model fits this machine: layers on GPU, memory, speed; and what to run",
        description=(
            "Plan models as Ollama's scheduler would: layers on the GPU(s) (num_gpu), memory as "
            "`ollama ps` would report it, a verdict (gpu, partial, cpu, none) and an estimated "
            "decode speed. Without MODEL: every installed model, then recommendations."
        ),
    )
    fit_cli.add_arguments(fit)
    _add_config_flag(fit)
    doctor_parser = commands.add_parser(
        "doctor",
        help="versions, server, hardware, where the models really are, and what is wrong there",
        description="Everything a bug report needs. Exit status 1 when a finding is an error.",
    )
    # The doctor's own imports (the Ollama client, the store, the history) load only when it runs.
    doctor_parser.add_argument(
        "--json", action="store_true", help="one JSON object, for scripts and bug reports"
    )
    _add_config_flag(doctor_parser)
    return parser


def _add_config_flag(command: argparse.ArgumentParser) -> None:
    # `llmdeck fit --config X` as well as `llmdeck --config X fit`. SUPPRESS keeps the
    # subcommand from overwriting a --config given before it with its own default.
    command.add_argument(
        "--config", metavar="FILE", type=Path, default=argparse.SUPPRESS, help="read settings from FILE"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        host = getattr(args, "fit_host", None) or args.host
        settings = load_settings(host=host, refresh_s=args.refresh, config_path=args.config)
        probe = _probe(args.hardware)
    except (HostError, SnapshotError) as error:
        print(f"llmdeck: {error}", file=sys.stderr)
        return 2
    if args.command is not None:
        # The TUI shows these itself; a command warns on stderr and carries on with the rest.
        for problem in settings.config_problems:
            print(f"llmdeck: warning: {problem}", file=sys.stderr)

    if args.command == "hardware":
        return _print_hardware(probe, as_json=args.json)
    if args.command == "fit":
        return fit_cli.run(args, settings, probe)
    if args.command == "doctor":
        from llmdeck import doctor

        return doctor.run(args, settings, probe)
    return _run_tui(settings, probe)


def _refresh_interval(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    try:
        return check_refresh(seconds)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _probe(recorded: Path | None) -> HardwareProbe:
    if recorded is None:
        return SystemProbe()
    return StaticProbe(HardwareSnapshot.load(recorded))


def _print_hardware(probe: HardwareProbe, *, as_json: bool) -> int:
    try:
        snapshot = probe.snapshot()
    finally:
        probe.close()
    if as_json:
        print(snapshot.to_json())
        return 0
    from llmdeck.units import gib

    cpu, memory = snapshot.cpu, snapshot.memory
    print(f"CPU   {cpu.model} ({cpu.physical_cores} cores, {cpu.logical_cores} threads)")
    print(f"RAM   {gib(memory.available_bytes)} free of {gib(memory.total_bytes)}")
    print(f"Swap  {gib(memory.swap_free_bytes)} free of {gib(memory.swap_total_bytes)}")
    shared = snapshot.gpu.unified
    if shared is not None:
        wired = f", {gib(shared.wired_bytes)} wired now" if shared.wired_bytes is not None else ""
        print(
            f"GPU   {shared.chip or 'Apple GPU'}: unified memory, up to {gib(shared.gpu_limit_bytes)} "
            f"of RAM ({shared.limit_source}){wired}"
        )
    elif not snapshot.gpu.gpus:
        print(f"GPU   {snapshot.gpu.unavailable_reason or 'none'}")
    for gpu in snapshot.gpu.gpus:
        print(f"GPU {gpu.index} {gpu.name}: {gib(gpu.vram_free_bytes)} free of {gib(gpu.vram_total_bytes)}")
    return 0


def _run_tui(settings: Settings, probe: HardwareProbe) -> int:
    from llmdeck.ollama_api import OllamaService
    from llmdeck.ui.app import create_app

    ollama = OllamaService(settings.host.value, connect_timeout_s=settings.connect_timeout_s)
    create_app(ollama, probe, settings).run()
    return 0
