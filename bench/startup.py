"""Start-up time: from launching `llmdeck` to the model list on screen.

Runs the installed `llmdeck` in a pseudo-terminal of 120x40 against the loopback Ollama stand-in,
reads what it draws, and stops the clock when the first model name appears; median of N runs.

    python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import shutil
import statistics
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ollama_standin import start_standin

MARKER = b"qwen2.5:14b"  # the largest stand-in model, first row of the list


def time_to_model_list(command: list[str], timeout_s: float = 20.0) -> float:
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    started = time.perf_counter()
    process = subprocess.Popen(command, stdin=child, stdout=child, stderr=child, env=env, close_fds=True)
    os.close(child)
    seen = b""
    try:
        while time.perf_counter() - started < timeout_s:
            ready, _, _ = select.select([main], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(main, 65536)
                except OSError:
                    break
                if MARKER in seen:
                    return time.perf_counter() - started
        raise RuntimeError("the model list never appeared")
    finally:
        os.write(main, b"\x11")  # ctrl+q
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
        os.close(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    llmdeck = shutil.which("llmdeck", path=str(Path(sys.executable).parent)) or shutil.which("llmdeck")
    if llmdeck is None:
        raise SystemExit("llmdeck is not installed in this environment")
    standin = start_standin()
    try:
        times = [time_to_model_list([llmdeck, "--host", standin.url]) for _ in range(args.runs)]
    finally:
        standin.server.stop()
    print(f"start to model list on screen, {args.runs} runs:")
    print(f"  median {statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s")


if __name__ == "__main__":
    main()
