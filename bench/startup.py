"""Start-up time: from launching `llmdeck` to the model list on screen.

Runs the installed `llmdeck` in a pseudo-terminal of 120x40 against the loopback Ollama stand-in,
reads what it draws, and stops the clock when the first model name appears; median of N runs.
llmdeck shows the list the server gave last time at once, then the server's own once it answers
(its import of the official client is half the start): both are timed, after one start that saves
the list, as for a returning user.
XDG_* point into a temporary folder. `--restored-tokens N` starts as a returning user does: the
history holds a chat whose reply is bench/perf.py's N-token Markdown answer, restored at start.
`--floor` also times, turn about, the least any Textual app on the official client can do: show
the installed models' names in a table (bench/peers.py --method list); what llmdeck takes beyond
it is its own.

    python bench/startup.py [--runs 5] [--restored-tokens 1500] [--floor]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ollama_standin import start_standin
from terminal import MARKER, Terminal, find_llmdeck

# The models pane's subtitle once the server has answered ("4 installed · sorted by Size").
SERVER_LIST = " installed · ".encode()


def floor_command(url: str) -> list[str]:
    return [sys.executable, str(Path(__file__).with_name("peers.py")), "--method", "list", "--host", url]


def time_to_model_list(command: list[str]) -> float:
    with Terminal(command) as terminal:
        return terminal.wait_for(MARKER)


def llmdeck_start_times(command: list[str]) -> tuple[float, float]:
    """Seconds to the model list on screen (the one the server gave last time, once a run has
    saved it), and to the server's own list (the pane's subtitle then counts what is installed)."""
    with Terminal(command) as terminal:
        return terminal.wait_for(MARKER), terminal.wait_for(SERVER_LIST)


def write_restored_chat(reply_tokens: int) -> None:
    """One earlier chat, a prompt and a long reply, in the history under the current XDG."""
    from perf import MODEL, answer

    from llmdeck.history import History, history_path

    history = History(history_path())
    try:
        chat = history.create_chat("Earlier chat", MODEL)
        history.add_message(chat.id, "user", "Tell me everything.")
        history.add_message(chat.id, "assistant", answer(reply_tokens))
    finally:
        history.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--restored-tokens", type=int, default=0, help="a restored chat's reply")
    parser.add_argument("--floor", action="store_true", help="time a bare Textual list app too")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="llmdeck-startup-")
    for variable in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        os.environ[variable] = os.path.join(home, variable.lower())
    if args.restored_tokens:
        write_restored_chat(args.restored_tokens)
    llmdeck = find_llmdeck()
    standin = start_standin()
    times: list[float] = []
    server_times: list[float] = []
    floor: list[float] = []
    try:
        # A returning user's start: the first one ever has no list saved yet (reported apart).
        first, first_server = llmdeck_start_times([llmdeck, "--host", standin.url])
        for _ in range(args.runs):
            shown, from_server = llmdeck_start_times([llmdeck, "--host", standin.url])
            times.append(shown)
            server_times.append(from_server)
            if args.floor:
                floor.append(time_to_model_list(floor_command(standin.url)))
    finally:
        standin.server.stop()
    print(f"start to model list on screen, {args.runs} runs:")
    for name, figures in (
        ("llmdeck, the list saved last time", times),
        ("llmdeck, the server's own list", server_times),
        ("floor (a bare Textual list)", floor),
    ):
        if figures:
            print(
                f"  {name}: median {statistics.median(figures):.3f} s,"
                f" min {min(figures):.3f} s, max {max(figures):.3f} s"
            )
    print(f"  llmdeck's first start ever (no list saved): {first:.3f} s, the server's {first_server:.3f} s")


if __name__ == "__main__":
    main()
