"""Start-up time: from launching `llmdeck` to the model list on screen.

Runs the installed `llmdeck` in a pseudo-terminal of 120x40 against the loopback Ollama stand-in,
reads what it draws, and stops the clock when the first model name appears; median of N runs.

    python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ollama_standin import start_standin
from terminal import MARKER, Terminal, find_llmdeck


def time_to_model_list(command: list[str]) -> float:
    with Terminal(command) as terminal:
        return terminal.wait_for(MARKER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    llmdeck = find_llmdeck()
    standin = start_standin()
    try:
        times = [time_to_model_list([llmdeck, "--host", standin.url]) for _ in range(args.runs)]
    finally:
        standin.server.stop()
    print(f"start to model list on screen, {args.runs} runs:")
    print(f"  median {statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s")


if __name__ == "__main__":
    main()
