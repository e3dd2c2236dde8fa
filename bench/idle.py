"""Idle cost: llmdeck's own CPU while it sits on the first screen with live gauges.

Runs the installed `llmdeck` in a 120x40 pseudo-terminal against the loopback Ollama stand-in,
waits for the model list, lets it settle (its start-up work over), then reads the process's CPU
time over a window. 100% is one core. Also counts the bytes it wrote to the terminal (each redraw
costs bytes).

    python bench/idle.py [--seconds 20] [--runs 3] [-- extra llmdeck arguments]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ollama_standin import start_standin
from terminal import MARKER, Terminal, find_llmdeck

# Before measuring (idle, or a prompt): at least SETTLE_MIN_S, then until SETTLE_QUIET_WINDOWS
# windows in a row of SETTLE_WINDOW_S each used under SETTLED_CPU of a core (idle with gauges is
# ~1%), at most SETTLE_MAX_S.
SETTLE_MIN_S = 1.5
SETTLE_WINDOW_S = 0.5
SETTLE_QUIET_WINDOWS = 2
SETTLED_CPU = 0.05
SETTLE_MAX_S = 20.0


def settle(pid: int) -> float:
    """Wait until the app's start-up work is over; returns the seconds waited.

    After the model list shows, llmdeck still plans the catalog and loads the Markdown renderer,
    in threads, for a few seconds on a busy machine (0.5 to 0.9 G instructions here): a prompt sent
    after a fixed 1.5 s had that counted as the cost of streaming; the idle reading waited a fixed
    4 s, whatever the machine's pace.
    """
    process = psutil.Process(pid)
    started = time.monotonic()
    time.sleep(SETTLE_MIN_S)
    quiet = 0
    while quiet < SETTLE_QUIET_WINDOWS and time.monotonic() - started < SETTLE_MAX_S:
        before = process.cpu_times()
        time.sleep(SETTLE_WINDOW_S)
        after = process.cpu_times()
        busy = (after.user + after.system - before.user - before.system) / SETTLE_WINDOW_S
        quiet = quiet + 1 if busy < SETTLED_CPU else 0
    return time.monotonic() - started


def idle_cost(command: list[str], seconds: float) -> tuple[float, int]:
    """CPU percent of one core and terminal bytes per second, measured after the screen settled."""
    with Terminal(command) as terminal:
        terminal.wait_for(MARKER)
        settle(terminal.process.pid)
        watched = psutil.Process(terminal.process.pid)
        before, bytes_before, started = watched.cpu_times(), terminal.written, time.monotonic()
        time.sleep(seconds)
        after, elapsed = watched.cpu_times(), time.monotonic() - started
        cpu = (after.user + after.system - before.user - before.system) / elapsed * 100
        return cpu, int((terminal.written - bytes_before) / elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="more llmdeck arguments (after --)")
    args = parser.parse_args()
    llmdeck = find_llmdeck()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # its request log would bury the table
    standin = start_standin()
    try:
        results = [
            idle_cost([llmdeck, "--host", standin.url, *args.extra], args.seconds) for _ in range(args.runs)
        ]
    finally:
        standin.server.stop()
    cpus = [cpu for cpu, _ in results]
    rates = [rate for _, rate in results]
    print(f"idle on the first screen, {args.runs} runs of {args.seconds:.0f} s, args {args.extra}:")
    print(f"  CPU median {statistics.median(cpus):.2f}% of a core (min {min(cpus):.2f}, max {max(cpus):.2f})")
    print(f"  terminal output median {statistics.median(rates)} bytes/s")


if __name__ == "__main__":
    main()
