"""Idle cost: llmdeck's own CPU while it sits on the first screen with live gauges.

Runs the installed `llmdeck` in a 120x40 pseudo-terminal against the loopback Ollama stand-in,
waits for the model list, lets it settle, then reads the process's CPU time over a window.
100% is one core. Also counts the bytes it wrote to the terminal (each redraw costs bytes).

    python bench/idle.py [--seconds 20] [--runs 3] [-- extra llmdeck arguments]
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import pty
import select
import shutil
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ollama_standin import start_standin

MARKER = b"qwen2.5:14b"


def idle_cost(command: list[str], seconds: float, settle_s: float = 4.0) -> tuple[float, int]:
    """CPU percent of one core and terminal bytes per second, measured after the screen settled."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    process = subprocess.Popen(command, stdin=child, stdout=child, stderr=child, env=env, close_fds=True)
    os.close(child)
    written = [0]
    seen = bytearray()
    stop = threading.Event()

    def drain() -> None:
        # A terminal that is not read blocks the app; read everything, as a terminal would.
        while not stop.is_set():
            ready, _, _ = select.select([main], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:
                    return
                written[0] += len(chunk)
                if len(seen) < 1_000_000:
                    seen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while MARKER not in seen:
            if time.monotonic() > deadline:
                raise RuntimeError("the model list never appeared")
            time.sleep(0.05)
        time.sleep(settle_s)
        watched = psutil.Process(process.pid)
        before = watched.cpu_times()
        bytes_before = written[0]
        started = time.monotonic()
        time.sleep(seconds)
        after = watched.cpu_times()
        elapsed = time.monotonic() - started
        cpu = (after.user + after.system - before.user - before.system) / elapsed * 100
        return cpu, int((written[0] - bytes_before) / elapsed)
    finally:
        os.write(main, b"\x11")  # ctrl+q
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
        stop.set()
        reader.join()
        os.close(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="more llmdeck arguments (after --)")
    args = parser.parse_args()
    llmdeck = shutil.which("llmdeck", path=str(Path(sys.executable).parent)) or shutil.which("llmdeck")
    if llmdeck is None:
        raise SystemExit("llmdeck is not installed in this environment")
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
