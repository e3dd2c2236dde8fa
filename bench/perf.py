"""Performance: every measure of issue 9, llmdeck side by side with the two peer methods.

Each app runs in a real 120x40 pseudo-terminal (bench/terminal.py) against the loopback Ollama
stand-in, which runs in a process of its own (its CPU is not the app's, as with a real Ollama).
CPU is the app process's own (user + system, 100% = one core), sampled every 20 ms. "On screen"
means the bytes reached the terminal: marker words of the answer (`Ayla-12`, one per table row)
are found in the terminal's output and timed against the moment the stand-in sent that token
(time.monotonic(), one clock for every process on the machine).

Streams (each app, each run, a fresh process; the prompt is sent once its start-up work is over,
its CPU quiet for a second, as a user reads the screen before typing):
- paced: a 1,500-token Markdown answer (headings, lists, code fences, tables) at 100 tokens/s;
  CPU over the stream, and the worst and 95th-percentile delay from a token sent to it on screen;
  where Linux `perf` may count them, the app's user-space instructions per token (from Enter to
  the last word; steadier than CPU time on a busy machine);
- tail: a 20,000-token answer, the first 18,500 tokens at once and the last 1,500 at 100/s; CPU
  and delays over the paced end from when the app has caught up with the burst (the catch-up
  time is reported too; for llmdeck the chat holds 50 earlier messages, and the RSS after it is
  the memory measure);
- burst: the 20,000-token answer as fast as the stand-in sends; tokens/s from the first token
  sent to the last word on screen. The stand-in sends faster than the official client alone can
  read (~35,000 tokens/s against ~15,000 here), so the time from its last chunk to the last word on
  screen is the queue still unread, reported for what it is;
- 5,000 tokens/s: the same answer sent at the rate the app must render; the delay from the last
  chunk sent to the last word on screen (an app that keeps up shows the end at once).
llmdeck alone: start to the model list on screen (bench/startup.py's way: the list the server gave
last time, then the server's own; after one start that saves it), idle CPU on the first
screen (bench/idle.py's way), and `llmdeck fit` over every catalog model; the start-up's floor is
a bare Textual app that shows the installed models' names (peers.py --method list). The peers are oterm's
method (`Markdown.get_stream` per token) and parllama's (a full `Markdown.update` at 10 Hz), in
bench/peers.py, with a floor beside them: the official client alone, each token written to the
terminal and nothing drawn (no app built on the client can cost less). Median of `--runs` runs.
A stream that does not finish within `--cap-s` is reported as capped, with what it reached.
XDG_* point into a temporary folder.

    python bench/perf.py [--runs 5] [--cap-s 60] [--only llmdeck,oterm,parllama,client]
                         [--markdown FILE] [--readme README.md]

Five runs take ~50 minutes on 2 cores (the peers are slow); `--runs 1` for a look.
"""

from __future__ import annotations

import argparse
import bisect
import multiprocessing
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from idle import idle_cost, settle  # noqa: E402
from ollama_standin import Reply, split_tokens, start_standin  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from scale import assistant_text, long_reply, user_text  # noqa: E402
from startup import floor_command, llmdeck_start_times, time_to_model_list  # noqa: E402
from terminal import MARKER, Terminal, find_llmdeck  # noqa: E402

MODEL = "llama3.1:8b"
PACED_TOKENS = 1_500
LONG_TOKENS = 20_000
PACED_TAIL = 1_500
TOKEN_DELAY_S = 0.01  # 100 tokens/s
FLOOD_DELAY_S = 1 / 5_000  # the rate the app must render: at it, it must not fall behind
HISTORY_MESSAGES = 50
SAMPLE_S = 0.02
KEEP_OUTPUT = 512 * 1024 * 1024
MARKER_WORD = re.compile(r"^[A-Z][a-z]+-\d+$")
END_WORD = "Omega-{tokens}"
PEERS = ("oterm", "parllama")
README_START, README_END = "<!-- perf:start -->", "<!-- perf:end -->"


# The answer, and the words that mark its progress on screen


def answer(tokens: int) -> str:
    """A Markdown answer of about `tokens` stand-in tokens ending in a word of its own."""
    text = long_reply(tokens)
    kept = "".join(split_tokens(text)[: tokens - 8])
    return f"{kept.rstrip()}\n\nThat is the whole answer, {END_WORD.format(tokens=tokens)}\n"


def markers(text: str) -> list[tuple[int, str]]:
    """(token index, word) for every word that occurs once in `text` and marks its place."""
    tokens = [token.strip() for token in split_tokens(text)]
    counts: dict[str, int] = {}
    for token in tokens:
        counts[token] = counts.get(token, 0) + 1
    return [
        (index, token)
        for index, token in enumerate(tokens)
        if MARKER_WORD.match(token) and counts[token] == 1
    ]


# The stand-in, in a process of its own


def _serve(connection: Connection) -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    standin = start_standin()
    connection.send(standin.url)
    while True:
        command, argument = connection.recv()
        if command == "reply":
            standin.replies.clear()
            standin.default_reply = Reply(**argument)
            standin.streams.clear()
            connection.send(None)
        elif command == "record":
            streams = sorted(standin.streams, key=lambda record: record.sent_tokens)
            record = streams[-1] if streams else None
            connection.send(
                None if record is None else {"times": record.token_times, "done": record.finished}
            )
        else:
            standin.server.stop()
            connection.send(None)
            return


class StandIn:
    def __enter__(self) -> StandIn:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child,), daemon=True)
        self._process.start()
        self.url: str = self._connection.recv()
        return self

    def call(self, command: str, argument: Any = None) -> Any:
        self._connection.send((command, argument))
        return self._connection.recv()

    def __exit__(self, *exc: object) -> None:
        self.call("stop")
        self._process.join(5)


# Measuring one app process


class CpuSampler:
    """The process's CPU seconds, sampled every 20 ms, to read the use over any window after."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                times = self._process.cpu_times()
            except psutil.Error:
                return
            self.samples.append((time.monotonic(), times.user + times.system))
            time.sleep(SAMPLE_S)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def percent(self, start: float, end: float) -> float | None:
        """CPU use between two monotonic times, in percent of one core."""
        inside = [sample for sample in self.samples if start <= sample[0] <= end]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < 0.5:
            return None
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return (c1 - c0) / (t1 - t0) * 100


class InstructionCounter:
    """User-space instructions the process runs while inside the block, counted by Linux `perf`
    when it is there and allowed. CPU time on a shared machine moves by a fifth between identical
    runs; the instructions move by about 2%, so a change's effect shows in one run."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._perf: subprocess.Popen[str] | None = None
        self.millions: float | None = None

    def __enter__(self) -> InstructionCounter:
        if shutil.which("perf"):
            command = ["perf", "stat", "-x,", "-e", "instructions:u", "-p", str(self._pid)]
            self._perf = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            time.sleep(0.2)  # attached before the measured work starts
        return self

    def __exit__(self, *exc: object) -> None:
        if self._perf is None:
            return
        self._perf.send_signal(signal.SIGINT)
        _, report = self._perf.communicate(timeout=10)
        for line in report.splitlines():
            count, _, rest = line.partition(",")
            if "instructions" in rest and count.isdigit():
                self.millions = int(count) / 1e6


def seen_at(terminal: Terminal, word: str) -> float | None:
    """When `word` first reached the terminal (monotonic time), if it did."""
    position = terminal.output.find(word.encode())
    if position < 0:
        return None
    last_byte = position + len(word)
    ends = [written for _, written in terminal.arrivals]
    index = bisect.bisect_left(ends, last_byte)
    return terminal.arrivals[min(index, len(ends) - 1)][0]


@dataclass
class Stream:
    cpu: float | None = None  # percent of one core over the measured window
    delay_max_ms: float | None = None
    delay_p95_ms: float | None = None
    rate: float | None = None  # tokens/s from the first sent to the last on screen
    final_ms: float | None = None  # last chunk sent to the last word on screen
    rss_mb: float | None = None
    catch_up_s: float | None = None  # after a burst, until the first paced word was on screen
    instructions_per_token: float | None = None  # millions, user space, from Enter to the end
    capped: bool = False
    reached: int = 0  # tokens on screen when capped
    instructions_millions: float | None = None  # the same, the whole stream
    notes: list[str] = field(default_factory=list)


def run_stream(
    command: list[str],
    ready: bytes,
    start_keys: bytes,
    standin: StandIn,
    text: str,
    pace_after: int,
    delay_s: float,
    cap_s: float,
) -> Stream:
    standin.call("reply", {"text": text, "token_delay_s": delay_s, "pace_after_tokens": pace_after})
    words = markers(text)
    end_index, end_word = words[-1]
    result = Stream()
    with Terminal(command, keep=KEEP_OUTPUT) as terminal, CpuSampler(terminal.process.pid) as cpu:
        terminal.wait_for(ready, 30)
        settle(terminal.process.pid)
        with InstructionCounter(terminal.process.pid) as instructions:
            terminal.type(start_keys)
            try:
                terminal.wait_for(end_word.encode(), cap_s)
            except RuntimeError:
                result.capped = True
        time.sleep(0.3)
        result.rss_mb = psutil.Process(terminal.process.pid).memory_info().rss / 2**20
        record = standin.call("record")
    times: list[float] = record["times"] if record else []
    if not times:
        result.notes.append("no token was sent")
        return result
    if instructions.millions is not None and not result.capped:
        result.instructions_millions = instructions.millions
        result.instructions_per_token = instructions.millions / len(times)
    shown = [(index, seen_at(terminal, word)) for index, word in words]
    window_start = times[min(pace_after, len(times) - 1)]
    if pace_after:
        # A paced end after a burst: measure from when the app has caught up with the burst
        # (its first paced word on screen), so the figure is the cost of the end, not the backlog.
        caught_up = min((at for index, at in shown if at is not None and index >= pace_after), default=None)
        if caught_up is not None:
            result.catch_up_s = max(0.0, caught_up - window_start)
            window_start = max(window_start, caught_up)
    delays = [
        (at - times[index]) * 1000
        for index, at in shown
        if at is not None and index >= pace_after and times[index] >= window_start
    ]
    if delays and delay_s:
        delays.sort()
        result.delay_max_ms = delays[-1]
        result.delay_p95_ms = delays[int(0.95 * (len(delays) - 1))]
    window_end = times[-1]
    result.cpu = cpu.percent(window_start, window_end)
    end_at = dict(shown).get(end_index)
    if end_at is not None and len(times) > end_index:
        result.final_ms = (end_at - times[-1]) * 1000
        result.rate = len(times) / (end_at - times[0])
    else:
        reached = [index for index, at in shown if at is not None]
        result.reached = (max(reached) + 1) if reached else 0
        last = max((at for _, at in shown if at is not None), default=None)
        if last is not None and last > times[0]:
            result.rate = result.reached / (last - times[0])
    return result


# Scenarios


def llmdeck_command(llmdeck: str, url: str) -> list[str]:
    return [llmdeck, "--host", url]


def peer_command(method: str, url: str) -> list[str]:
    return [sys.executable, str(HERE / "peers.py"), "--method", method, "--host", url, "--model", MODEL]


def write_history(messages: int) -> None:
    """A chat of `messages` earlier messages in llmdeck's history (under the temporary XDG)."""
    from llmdeck.history import History, history_path

    path = history_path()
    if path.exists():
        path.unlink()
    history = History(path)
    try:
        chat = history.create_chat(f"Earlier chat ({messages} messages)", MODEL)
        for index in range(messages // 2):
            history.add_message(chat.id, "user", user_text(index))
            history.add_message(chat.id, "assistant", assistant_text(index))
    finally:
        history.close()


def fit_seconds(llmdeck: str) -> float:
    from llmdeck.fit.catalog import load_catalog

    tags = [known["tag"] for entry in load_catalog().entries for known in entry.tags.values()]
    started = time.perf_counter()
    subprocess.run(
        [llmdeck, "fit", "--host", "127.0.0.1:9", "--gpu-free", "24", "--ram-free", "64", *tags],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


Measures = dict[str, list[float | None]]


def measure_app(
    name: str, command: Callable[[str], list[str]], standin: StandIn, cap_s: float, measures: Measures
) -> None:
    is_llmdeck = name == "llmdeck"
    ready, keys = (MARKER, b"hi\r") if is_llmdeck else (b"PEER-READY", b"\r")
    short, long = answer(PACED_TOKENS), answer(LONG_TOKENS)

    def add(key: str, value: float | None) -> None:
        measures.setdefault(f"{name}:{key}", []).append(value)

    write_history(0)
    paced = run_stream(command(standin.url), ready, keys, standin, short, 0, TOKEN_DELAY_S, cap_s)
    add("paced_cpu", paced.cpu)
    add("paced_delay_max", paced.delay_max_ms)
    add("paced_delay_p95", paced.delay_p95_ms)
    add("paced_instructions", paced.instructions_per_token)
    write_history(HISTORY_MESSAGES)
    tail_from = len(split_tokens(long)) - PACED_TAIL
    tail = run_stream(command(standin.url), ready, keys, standin, long, tail_from, TOKEN_DELAY_S, cap_s + 15)
    add("tail_cpu", tail.cpu)
    add("tail_delay_max", tail.delay_max_ms)
    add("tail_catch_up", tail.catch_up_s)
    add("rss", tail.rss_mb)
    write_history(0)
    burst = run_stream(command(standin.url), ready, keys, standin, long, 0, 0.0, cap_s)
    add("burst_rate", burst.rate)
    add("burst_backlog", burst.final_ms if not burst.capped else None)
    write_history(0)
    flood = run_stream(command(standin.url), ready, keys, standin, long, 0, FLOOD_DELAY_S, cap_s)
    add("flood_final", flood.final_ms if not flood.capped else None)
    add("flood_cpu", flood.cpu)
    for label, stream in (("paced", paced), ("tail", tail), ("burst", burst), ("5,000 tok/s", flood)):
        if stream.capped:
            print(f"  {name} {label}: capped at {cap_s:.0f} s, {stream.reached} tokens on screen", flush=True)
    print(
        f"  {name}: paced {_fmt(paced.cpu)}% max {_fmt(paced.delay_max_ms)} ms · tail {_fmt(tail.cpu)}%"
        f" · burst {_fmt(burst.rate)} tok/s, backlog {_fmt(burst.final_ms)} ms"
        f" · at 5,000 tok/s final {_fmt(flood.final_ms)} ms · RSS {_fmt(tail.rss_mb)} MB",
        flush=True,
    )


def _fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def median(values: list[float | None] | None) -> float | None:
    kept = [value for value in values or [] if value is not None]
    return statistics.median(kept) if kept else None


ROWS = (
    # label, target, key, unit, digits, better ("low" or "high")
    ("streaming at 100 tok/s, 1,500-token answer: CPU", "≤ 10%", "paced_cpu", "%", 1, "low"),
    ("  token sent → on screen, worst (95th pct)", "≤ 100 ms", "paced_delay_max", " ms", 0, "low"),
    ("  instructions per token (millions, from Enter; `perf`)", "—", "paced_instructions", " M", 2, "low"),
    ("same, at the end of a 20,000-token answer: CPU", "≤ 15%", "tail_cpu", "%", 1, "low"),
    ("  token sent → on screen, worst (after catching up)", "≤ 100 ms", "tail_delay_max", " ms", 0, "low"),
    ("  catching up with the 18,500-token burst before it", "—", "tail_catch_up", " s", 1, "low"),
    ("burst (as fast as the server sends): rendered", "≥ 5,000 tok/s", "burst_rate", " tok/s", 0, "high"),
    ("  sent at 5,000 tok/s: last chunk → complete text", "≤ 100 ms", "flood_final", " ms", 0, "low"),
    ("  CPU while it is sent at 5,000 tok/s", "—", "flood_cpu", "%", 0, "low"),
    ("  unpaced: server done → complete text (queued)", "—", "burst_backlog", " ms", 0, "low"),
    ("RSS after a 20,000-token answer (+ 50 messages)", "≤ 150 MB", "rss", " MB", 0, "low"),
)


def table(measures: Measures, apps: list[str], runs: int) -> str:
    header = ["measure", "target", *[_title(app) for app in apps]]
    if "llmdeck" in apps:
        header += [f"{_title(peer)} ÷ llmdeck" for peer in PEERS if peer in apps]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, target, key, unit, digits, better in ROWS:
        values = {app: median(measures.get(f"{app}:{key}")) for app in apps}
        cells = [label, target]
        for app in apps:
            cell = _fmt(values[app], digits) + unit if values[app] is not None else "—"
            p95 = median(measures.get(f"{app}:paced_delay_p95")) if key == "paced_delay_max" else None
            if p95 is not None:
                cell += f" ({p95:,.0f})"
            cells.append(cell)
        if "llmdeck" in apps:
            for peer in PEERS:
                if peer not in apps:
                    continue
                mine, theirs = values["llmdeck"], values[peer]
                if mine and theirs:
                    ratio = theirs / mine if better == "low" else mine / theirs
                    cells.append(f"{ratio:,.1f}x")
                else:
                    cells.append("—")
        lines.append("| " + " | ".join(cells) + " |")
    for label, target, key, unit, digits in (
        ("start to first paint with the model list", "≤ 0.6 s", "startup", " s", 2),
        ("  the server's own list (shown first: the one it gave last time)", "—", "startup_server", " s", 2),
        ("idle with live gauges (default rate): CPU", "≤ 1%", "idle", "%", 2),
        ("`llmdeck fit` over every catalog model", "≤ 0.5 s", "fit", " s", 2),
    ):
        cells = [label, target]
        for app in apps:
            # Only the start-up has a floor (a bare Textual app listing the models, in the client
            # column); the peers do not list models, and idle and `fit` are llmdeck's alone.
            value = median(measures.get(f"{app}:{key}"))
            cells.append(_fmt(value, digits) + unit if value is not None else "n/a")
        cells += ["n/a"] * (len(header) - len(cells))
        lines.append("| " + " | ".join(cells) + " |")
    cpu = platform.processor() or platform.machine()
    lines.append("")
    lines.append(
        f"Median of {runs} run(s) on {os.cpu_count()} cores ({cpu}), Python {platform.python_version()},"
        f" {platform.system()} {platform.release()}; 120x40 pty; CPU of the app process only."
    )
    return "\n".join(lines)


def _title(app: str) -> str:
    return {
        "llmdeck": "llmdeck",
        "oterm": "oterm method",
        "parllama": "parllama method",
        "client": "client alone (floor)",
    }[app]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cap-s", type=float, default=60.0, help="longest wait for one stream")
    parser.add_argument("--only", default="llmdeck,oterm,parllama,client", help="apps to measure")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--readme", type=Path, help="put the table between the perf markers of this file")
    args = parser.parse_args()
    apps = [app for app in args.only.split(",") if app]
    home = tempfile.mkdtemp(prefix="llmdeck-perf-")
    for variable in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        os.environ[variable] = os.path.join(home, variable.lower())
    llmdeck = find_llmdeck()
    measures: Measures = {}
    with StandIn() as standin:
        for run in range(args.runs):
            print(f"run {run + 1} of {args.runs}", flush=True)
            time.sleep(2.0)
            # The one-app measures first: a peer app still busy from its last stream would weigh
            # on a start-up or an idle reading (seen: 1.88 s for a start that takes 1.17 s alone).
            if "llmdeck" in apps:
                write_history(0)
                if run == 0:
                    # A returning user's start: the first one ever has no model list saved yet.
                    llmdeck_start_times(llmdeck_command(llmdeck, standin.url))
                    time.sleep(2.0)
                shown, from_server = llmdeck_start_times(llmdeck_command(llmdeck, standin.url))
                measures.setdefault("llmdeck:startup", []).append(shown)
                measures.setdefault("llmdeck:startup_server", []).append(from_server)
                measures.setdefault("llmdeck:idle", []).append(
                    idle_cost(llmdeck_command(llmdeck, standin.url), 10.0)[0]
                )
                measures.setdefault("llmdeck:fit", []).append(fit_seconds(llmdeck))
            if "client" in apps:
                time.sleep(2.0)  # as before every other measure: the last process has let go
                floor = time_to_model_list(floor_command(standin.url))
                measures.setdefault("client:startup", []).append(floor)
                measures.setdefault("client:startup_server", []).append(floor)
            for app in apps:
                time.sleep(2.0)  # the previous app's process has let go of the CPU
                if app == "llmdeck":
                    command: Callable[[str], list[str]] = lambda url: llmdeck_command(llmdeck, url)  # noqa: E731
                else:
                    command = lambda url, method=app: peer_command(method, url)  # type: ignore[misc]  # noqa: E731
                measure_app(app, command, standin, args.cap_s, measures)
    result = table(measures, apps, args.runs)
    print()
    print(result)
    if args.markdown:
        args.markdown.write_text(result + "\n", encoding="utf-8")
    if args.readme:
        text = args.readme.read_text(encoding="utf-8")
        start, end = text.index(README_START) + len(README_START), text.index(README_END)
        args.readme.write_text(f"{text[:start]}\n{result}\n{text[end:]}", encoding="utf-8")


if __name__ == "__main__":
    main()
