"""Scale: a 100,000-token reply, and a history of thousands of messages, in the real app.

Drives the app headless (`run_test`, 120x40) against the loopback Ollama stand-in and measures:

- reply: a ~100k-token Markdown reply (prose, lists, code fences, tables) streamed unpaced: wall
  time from Enter to the reply complete on screen, tokens/s, RSS (peak, during, after), and the
  app's responsiveness while it streams: every 100 ms a thread "presses a key" (posts to the app,
  which passes it to the prompt's queue, as Textual does with keys) and the wait until the prompt
  handles it is timed; also how late the event loop wakes from a 100 ms sleep;
- paced: the same for its first 10,000 tokens, sent at ~1,000 tokens/s (1 ms between tokens);
- history: 20 stored chats, one of 5,000 messages: start to restored chats on screen, RSS, the
  switch to the big chat, and one reply in it (its request carries all 5,000 messages);
- profile: the unpaced reply again under cProfile, the top functions of llmdeck and Textual.

Each measured run is a fresh process, so peak RSS is that scenario's own; the stand-in runs in
another process, so its CPU, memory and GIL are not the app's (as with a real Ollama). The
stand-in's simulated prompt evaluation (0.2 ms per prompt token, ~3 minutes for the big chat) is
skipped: it is the server's time, not llmdeck's. No run goes on longer than `--cap-s`; a capped
run reports what it reached. XDG_* point into a temporary folder: the real home is never touched.

    python bench/scale.py [--runs 1] [--tokens 100000] [--big-chat 5000] [--cap-s 180]
                          [--only reply,paced,history,profile] [--notes FILE]

One run of each takes ~10 minutes on 2 cores (the profile always runs once); a quick check:
`--tokens 2000 --big-chat 200 --cap-s 30`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import multiprocessing
import os
import platform
import pstats
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers import DATA, fast_settings  # type: ignore[import-not-found,unused-ignore]
from ollama_standin import (  # type: ignore[import-not-found,unused-ignore]
    DEFAULT_REPLY,
    OllamaStandIn,
    Reply,
    split_tokens,
)

SIZE = (120, 40)
MODEL = "llama3.1:8b"
PROBE_INTERVAL_S = 0.1
WATCH_INTERVAL_S = 0.01
PACED_TOKENS = 10_000
PACED_DELAY_S = 0.001
BIG_CHAT_MESSAGES = 5_000
SMALL_CHATS = 19
SMALL_CHAT_MESSAGES = 50
RESULT_PREFIX = "SCALE-RESULT "
NOTES_START = "<!-- figures:start (written by bench/scale.py) -->"
NOTES_END = "<!-- figures:end -->"
MB = 1024 * 1024

Result = dict[str, Any]


# The texts


def long_reply(target_tokens: int) -> str:
    """Markdown of at least `target_tokens` stand-in tokens: sections of prose, a list, a code
    fence and a table, repeated with numbers so no two sections are the same."""
    sections: list[str] = []
    tokens = 0
    number = 0
    while tokens < target_tokens:
        number += 1
        section = f"""## Section {number}: how a llama carries load

Llamas have carried loads in the Andes for thousands of years. A healthy adult can carry about a \
quarter of its body weight, around {20 + number % 15} kg, for {10 + number % 20} km a day. When the \
load is too heavy it lies down and refuses to move, which is a **clear signal** rather than stubbornness.

1. Check the saddle before every trip (item {number}.1).
2. Balance the panniers: the difference should stay under `{number % 7 + 1} kg`.
3. Give water every *two hours*, more above {3000 + number} m.
   - a nested note about shade and rest;
   - another nested note about the herd.

```python
def carried_{number}(weight_kg: float, distance_km: float) -> float:
    \"\"\"Work done by llama {number}, in kg·km.\"\"\"
    if weight_kg <= 0:
        return 0.0
    return weight_kg * distance_km * {1 + number % 9}
```

| llama | load (kg) | distance (km) | notes |
| --- | ---: | ---: | --- |
| Ayla-{number} | {20 + number % 15} | {10 + number % 20} | steady |
| Beni-{number} | {18 + number % 11} | {12 + number % 17} | hums when curious |
| Coco-{number} | {25 + number % 9} | {8 + number % 13} | leads the herd |

> Tip {number}: a llama that hums is curious or worried; one that spits is only rarely aiming at people.

"""
        sections.append(section)
        tokens += len(split_tokens(section))
    return "".join(sections)


WORDS = tuple(
    " ".join(
        (
            "the model reads each token of the prompt once and keeps its keys and values in the cache",
            "so later tokens attend to them without recomputing anything which is why a long context",
            "costs memory on the GPU and time on the first token but little on each token after that",
        )
    ).split(" ")
)


def assistant_text(index: int, words: int = 300) -> str:
    """About `words` words of Markdown: a heading, paragraphs, a list, now and then a code fence."""
    picked = [WORDS[(index * 7 + i) % len(WORDS)] for i in range(words - 40)]
    paragraphs = [" ".join(picked[i : i + 60]).capitalize() + "." for i in range(0, len(picked), 60)]
    parts = [f"### Answer {index}", *paragraphs[:2]]
    parts.append("\n".join(f"- point {index}.{n}: {' '.join(WORDS[n : n + 6])}" for n in range(1, 5)))
    if index % 5 == 0:
        parts.append(f"```python\nprint({index})\nvalue = {index} * 2\n```")
    parts.extend(paragraphs[2:])
    return "\n\n".join(parts)


def user_text(index: int) -> str:
    return f"Question {index}: why does a long context cost memory, and how much for {index} tokens?"


# The stand-in, in a process of its own


def _standin_process(connection: Connection) -> None:
    """Serve the stand-in; commands come over `connection` until "stop"."""
    import logging

    from pytest_httpserver import HTTPServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # its request log would bury the table

    class NoPromptEvalStandIn(OllamaStandIn):  # type: ignore[misc,unused-ignore]
        """Skips the simulated prompt evaluation (server time, not llmdeck's); remembers its size."""

        prompt_tokens_seen: list[int]

        def _stream(  # type: ignore[no-untyped-def,unused-ignore]
            self, name, reply, record, prompt_tokens, keep_alive=None
        ):
            self.prompt_tokens_seen.append(prompt_tokens)
            return super()._stream(name, reply, record, 0, keep_alive)

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    standin = NoPromptEvalStandIn(server)
    standin.prompt_tokens_seen = []
    server.start()
    connection.send(standin.url)
    try:
        while True:
            command, *arguments = connection.recv()
            if command == "replies":
                # Answered in turn by the next chat requests (loading a model ahead does not count).
                standin.replies.clear()
                standin.replies.extend(Reply(text=text, token_delay_s=delay) for text, delay in arguments[0])
                connection.send(None)
            elif command == "requests":
                sent = [request for request in standin.chat_requests if request.get("messages")]
                connection.send(
                    [
                        {"messages": len(request["messages"]), "prompt_tokens": tokens}
                        for request, tokens in zip(sent, standin.prompt_tokens_seen, strict=False)
                    ]
                )
                standin.chat_requests.clear()
                standin.prompt_tokens_seen.clear()
            else:
                break
    finally:
        server.stop()


class StandIn:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_standin_process, args=(child,), daemon=True)
        self._process.start()
        self.url: str = self._connection.recv()

    def replies(self, *replies: tuple[str, float]) -> None:
        """What the next chat requests answer, in turn: (text, seconds between tokens) each."""
        self._connection.send(("replies", list(replies)))
        self._connection.recv()

    def requests(self) -> list[dict[str, int]]:
        self._connection.send(("requests",))
        return list(self._connection.recv())

    def stop(self) -> None:
        self._connection.send(("stop",))
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()


# Inside the app's process


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / MB


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


async def round_trip(target: Any) -> float:
    """Seconds for a callback to get through `target`'s message queue and back."""
    done = asyncio.Event()
    started = time.perf_counter()
    target.call_later(done.set)
    await done.wait()
    return time.perf_counter() - started


def _ms(values: list[float], pick: Callable[[list[float]], float]) -> float | None:
    return round(pick(values) * 1000, 1) if values else None


def _p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


class KeyProbe:
    """What a key pressed at any moment waits before the prompt gets it.

    Every 100 ms a thread posts to the app, as Textual's input thread posts a key; the app passes
    it on to the prompt's queue, as it forwards a key to the focused widget; the time from the post
    to the prompt handling it is the latency. A thread, not a coroutine: a blocked event loop
    cannot delay the moment of the "key press", only its handling."""

    def __init__(self, app: Any, prompt: Any) -> None:
        self.app = app
        self.prompt = prompt
        self.sent = 0
        self.latencies: list[float] = []
        self.timeline: list[tuple[float, float]] = []  # (when sent, perf_counter; latency)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="key-probe", daemon=True)

    def __enter__(self) -> KeyProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(PROBE_INTERVAL_S):
            self.sent += 1
            self.app.call_later(self.prompt.call_later, self._arrived, time.perf_counter())

    def _arrived(self, sent: float) -> None:
        self.latencies.append(time.perf_counter() - sent)
        self.timeline.append((sent, self.latencies[-1]))

    def figures(self, prefix: str) -> Result:
        over = sum(latency > 0.1 for latency in self.latencies)
        return {
            f"{prefix}key_probes": self.sent,
            f"{prefix}key_median_ms": _ms(self.latencies, statistics.median),
            f"{prefix}key_p95_ms": _ms(self.latencies, _p95),
            f"{prefix}key_max_ms": _ms(self.latencies, max),
            f"{prefix}key_over_100ms_pct": round(100 * over / len(self.latencies), 1)
            if self.latencies
            else None,
        }


class Probe:
    """Every 100 ms (in the event loop): how late the loop woke up from a 100 ms sleep, and RSS."""

    def __init__(self) -> None:
        self.loop_lag: list[float] = []
        self.rss: list[float] = []
        self.series: list[tuple[float, int, float, float]] = []  # (s, tokens, RSS MB, lag s)

    async def sample(self, elapsed_s: float, tokens: int) -> None:
        asleep = time.perf_counter()
        await asyncio.sleep(PROBE_INTERVAL_S)
        self.loop_lag.append(max(0.0, time.perf_counter() - asleep - PROBE_INTERVAL_S))
        self.rss.append(rss_mb())
        self.series.append((elapsed_s, tokens, self.rss[-1], self.loop_lag[-1]))

    def figures(self, prefix: str) -> Result:
        return {
            f"{prefix}loop_lag_median_ms": _ms(self.loop_lag, statistics.median),
            f"{prefix}loop_lag_max_ms": _ms(self.loop_lag, max),
            f"{prefix}rss_max_sampled_mb": round(max(self.rss), 1) if self.rss else None,
        }


def build_app(url: str) -> Any:
    from llmdeck.hardware import HardwareSnapshot, StaticProbe
    from llmdeck.ollama_api import OllamaService
    from llmdeck.ui.app import create_app

    probe = StaticProbe(HardwareSnapshot.load(DATA / "workstation-rtx4090.json"))
    return create_app(OllamaService(url), probe, fast_settings(url))


async def wait_for(
    predicate: Callable[[], bool], timeout_s: float, step_s: float = WATCH_INTERVAL_S
) -> float:
    """Poll until `predicate` holds; the seconds it took (raises TimeoutError after `timeout_s`)."""
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"not within {timeout_s} s")
        await asyncio.sleep(step_s)
    return time.perf_counter() - started


def app_ready(app: Any) -> bool:
    from llmdeck.ui.chat_pane import ChatPane
    from llmdeck.ui.models_pane import ModelsPane

    chat = app.query_one(ChatPane)
    return bool(
        app.query_one(ModelsPane).row_count > 0 and app.history_restored and chat.session and app.fits
    )


def last_turn(chat: Any) -> str:
    turns = chat.active.turns
    return str(turns[-1].content) if turns and turns[-1].role == "assistant" else ""


async def send_and_watch(
    app: Any, pilot: Any, prompt_text: str, expected: str, cap_s: float, prefix: str, limit_s: float
) -> Result:
    """Send a prompt, probe the app every 100 ms until the reply is complete on screen; what it took.

    After `cap_s` the reply is stopped (as Esc does) and its wrap-up awaited; after `limit_s` more
    the run gives up waiting and says so."""
    from llmdeck.ui.chat_pane import ChatPane

    chat = app.query_one(ChatPane)
    prompt = app.query_one("#prompt")
    prompt.focus()
    prompt.value = prompt_text
    turns_before = len(chat.active.turns)
    probe = Probe()
    keys = KeyProbe(app, prompt)
    marks: dict[str, float] = {}

    last_count = [0]

    def tokens_now() -> int:
        meter = chat._meter
        if meter is None:
            return -1
        last_count[0] = int(meter.tokens)
        return last_count[0]

    started = time.perf_counter()

    async def watch() -> None:
        # Fine-grained marks: the first token, the end of receiving, the reply complete on screen.
        seen_meter = False
        while True:
            meter = chat._meter
            now = time.perf_counter() - started
            if meter is not None:
                seen_meter = True
                if meter.tokens and "first_token" not in marks:
                    marks["first_token"] = now
            elif seen_meter and "received" not in marks:
                marks["received"] = now
            if len(chat.active.turns) == turns_before + 2 and not chat.streaming:
                marks["complete"] = now
                return
            await asyncio.sleep(WATCH_INTERVAL_S)

    watcher = asyncio.create_task(watch())
    await pilot.press("enter")
    capped = gave_up = False
    reported = 0.0
    keys.__enter__()
    while not watcher.done():
        elapsed = time.perf_counter() - started
        if elapsed > cap_s and not capped and chat._meter is not None:  # tokens still arriving
            capped = True
            marks["capped_at"] = elapsed
            chat.stop_reply()
        if elapsed > cap_s + limit_s:
            gave_up = True
            watcher.cancel()
            break
        if elapsed - reported >= 10:
            reported = elapsed
            tokens = tokens_now()
            doing = f"{tokens:,} tokens" if tokens >= 0 else "wrapping up"
            print(f"  {prefix or 'reply '}{elapsed:5.0f} s: {doing}, RSS {rss_mb():.0f} MB", file=sys.stderr)
        await probe.sample(elapsed, tokens_now())
    keys.__exit__()
    if not gave_up:
        await watcher
        await pilot.pause()
    end = time.perf_counter() - started
    complete = marks.get("complete")
    text = last_turn(chat) if complete is not None else ""
    reached = len(split_tokens(text)) if complete is not None else last_count[0]
    gc.collect()
    received = marks.get("received", complete if complete is not None else end)
    receive_s = received - marks.get("first_token", 0.0)
    return {
        f"{prefix}complete": text == expected,
        f"{prefix}capped": capped,
        f"{prefix}gave_up": gave_up,
        f"{prefix}tokens_expected": len(split_tokens(expected)),
        f"{prefix}tokens_reached": reached,
        f"{prefix}enter_to_complete_s": None if complete is None else round(complete, 3),
        f"{prefix}enter_to_idle_s": round(end, 3),
        f"{prefix}first_token_s": round(marks["first_token"], 3) if "first_token" in marks else None,
        f"{prefix}receive_s": round(receive_s, 3),
        f"{prefix}wrap_up_s": None if complete is None else round(complete - received, 3),
        f"{prefix}tokens_per_s": None if complete is None else round(reached / complete, 1),
        f"{prefix}receive_tokens_per_s": round(reached / receive_s, 1) if receive_s > 0 else None,
        f"{prefix}rss_after_mb": round(rss_mb(), 1),
        f"{prefix}series": probe.series,
        f"{prefix}key_series": [(sent - started, latency) for sent, latency in keys.timeline],
        f"{prefix}rss_mb_per_1k_tokens": rss_per_1k_tokens(probe.series),
        **probe.figures(prefix),
        **keys.figures(prefix),
    }


async def reply_scenario(url: str, text: str, cap_s: float, limit_s: float) -> Result:
    from llmdeck.ui.chat_pane import AssistantTurn, ChatPane

    result: Result = {}
    app = build_app(url)
    started = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app_ready(app), 60)
        result["start_to_ready_s"] = round(time.perf_counter() - started, 3)
        await pilot.pause()
        chat = app.query_one(ChatPane)
        result["rss_ready_mb"] = round(rss_mb(), 1)
        result["widgets_ready"] = len(list(app.screen.walk_children()))
        result.update(
            await send_and_watch(app, pilot, "Write a very long guide to llamas", text, cap_s, "", limit_s)
        )
        reply = list(chat.transcript().query(AssistantTurn))[-1]
        result["reply_blocks"] = len(reply.children)
        result["reply_widgets"] = len(list(reply.walk_children()))
        result["widgets_after"] = len(list(app.screen.walk_children()))
        result["reply_chars"] = len(last_turn(chat))
    result["rss_peak_mb"] = round(peak_rss_mb(), 1)
    return result


async def history_scenario(
    url: str, expected_chats: int, big_messages: int, cap_s: float, limit_s: float
) -> Result:
    from textual.widgets import Tab

    from llmdeck.ui.chat_pane import RESTORED_MESSAGES_SHOWN, ChatPane, ChatTabs

    result: Result = {"rss_before_app_mb": round(rss_mb(), 1)}
    app = build_app(url)
    started = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        chat = app.query_one(ChatPane)

        def restored() -> bool:
            if not app.history_restored or len(chat.query_one(ChatTabs).query(Tab)) != expected_chats:
                return False
            children = chat.transcript().children
            return bool(children) and children[-1].region.height > 0

        await wait_for(restored, cap_s)
        result["start_to_restored_s"] = round(time.perf_counter() - started, 3)
        await wait_for(lambda: app_ready(app), cap_s)
        result["start_to_ready_s"] = round(time.perf_counter() - started, 3)
        await pilot.pause()
        result["rss_restored_mb"] = round(rss_mb(), 1)
        big = next(key for key, session in chat.chats.items() if len(session.turns) == big_messages)
        result["big_chat_is_front"] = chat.active_key == big
        keys = list(chat.chats)
        chat.query_one("#prompt").focus()
        # ctrl+pagedown from the last tab wraps to the first: the big chat, made first.
        presses = (keys.index(big) - keys.index(chat.active_key)) % len(keys)

        def shown() -> bool:
            children = chat.transcript(big).children
            return chat.active_key == big and bool(children) and children[-1].region.height > 0

        with KeyProbe(app, chat.query_one("#prompt")) as switch_keys:
            switch_started = time.perf_counter()
            if presses == 1:
                await pilot.press("ctrl+pagedown")
            else:
                chat._activate(big)
            result["switch_key_handled_s"] = round(time.perf_counter() - switch_started, 3)
            result["switch_first_trip_ms"] = round(await round_trip(app) * 1000, 1)
            await wait_for(shown, cap_s)
            result["switch_to_last_message_shown_s"] = round(time.perf_counter() - switch_started, 3)
            await pilot.pause()
            result["switch_to_idle_s"] = round(time.perf_counter() - switch_started, 3)
        await pilot.pause()
        result.update(switch_keys.figures("switch_"))
        trips = []
        for _ in range(10):
            await asyncio.sleep(PROBE_INTERVAL_S)
            trips.append(await round_trip(app))
        result["settled_trip_max_ms"] = round(max(trips) * 1000, 1)
        result["settled_trip_median_ms"] = round(statistics.median(trips) * 1000, 1)
        result["big_chat_widgets"] = len(chat.transcript(big).children)
        result["restored_shown"] = RESTORED_MESSAGES_SHOWN
        result["rss_after_switch_mb"] = round(rss_mb(), 1)
        result["messages_sent_with_prompt"] = len(chat.active.messages()) + 1
        result.update(
            await send_and_watch(app, pilot, "One more question", DEFAULT_REPLY, cap_s, "big_", limit_s)
        )
    result["rss_peak_mb"] = round(peak_rss_mb(), 1)
    return result


def top_functions(profiler: cProfile.Profile, count: int = 10) -> Result:
    """The top functions of llmdeck and Textual by cumulative time, and of everything by own time."""
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = stats.stats  # type: ignore[attr-defined]
    ours = re.compile(r"[/\\](llmdeck|textual)[/\\]")

    def line(key: tuple[str, int, str], value: tuple[int, int, float, float, Any]) -> str:
        filename, lineno, name = key
        _, calls, own, cumulative, _ = value
        short = re.sub(r".*[/\\](site-packages|src)[/\\]", "", filename)
        return f"{cumulative:8.2f} s cum {own:7.2f} s own {calls:>9} calls  {short}:{lineno}({name})"

    # Coroutines driving the whole run (the message loop, the pilot) are on top of everything:
    # leave out the frames that only wrap the others.
    wrappers = {"_process_messages", "_process_messages_loop", "run_test", "_run", "run_async",
                "_process_message", "_dispatch_message", "_on_message", "_run_worker", "run",
                "_ready", "_flush_next_callbacks", "invoke", "_invoke", "_forward_event", "on_event",
                "_on_idle", "_async_run", "_run_coroutine"}  # fmt: skip
    cumulative = sorted(
        ((key, value) for key, value in rows.items() if ours.search(key[0]) and key[2] not in wrappers),
        key=lambda item: item[1][3],
        reverse=True,
    )
    own = sorted(rows.items(), key=lambda item: item[1][2], reverse=True)
    # Where a token's way to the screen spends it, step by step (each as cProfile sees it).
    steps = {
        ("llmdeck/ui/chat_pane.py", "_receive"), ("llmdeck/ui/chat_pane.py", "_show_live_status"),
        ("llmdeck/sanitize.py", "inert"), ("llmdeck/history.py", "update_message"),
        ("textual/widgets/_markdown.py", "write"), ("textual/widgets/_markdown.py", "await_append"),
        ("textual/widgets/_markdown.py", "append"), ("textual/widgets/_markdown.py", "update"),
        ("markdown_it/main.py", "parse"), ("textual/widget.py", "mount_all"),
        ("textual/css/stylesheet.py", "update_nodes"), ("textual/screen.py", "_refresh_layout"),
        ("textual/_compositor.py", "reflow"), ("textual/_compositor.py", "render_update"),
        ("textual/_compositor.py", "render_full"), ("textual/_compositor.py", "render_partial_update"),
    }  # fmt: skip
    chosen = sorted(
        (
            (key, value)
            for key, value in rows.items()
            if any(key[0].replace("\\", "/").endswith(path) and key[2] == name for path, name in steps)
        ),
        key=lambda item: item[1][3],
        reverse=True,
    )
    return {
        "profile_cumulative": [line(key, value) for key, value in cumulative[:count]],
        "profile_own": [line(key, value) for key, value in own[:count]],
        "profile_steps": [line(key, value) for key, value in chosen],
        "profile_total_s": round(max((value[3] for value in rows.values()), default=0.0), 2),
    }


def worker(args: argparse.Namespace) -> None:
    """One scenario in this process; prints its result as one JSON line."""
    text = Path(args.text_file).read_text() if args.text_file else ""
    if args.worker == "history":
        result = asyncio.run(
            history_scenario(args.url, args.chats, args.big_messages, args.cap_s, args.limit_s)
        )
    elif args.worker == "profile":
        profiler = cProfile.Profile()
        profiler.enable()
        result = asyncio.run(reply_scenario(args.url, text, args.cap_s, args.limit_s))
        profiler.disable()
        result.update(top_functions(profiler))
    else:
        result = asyncio.run(reply_scenario(args.url, text, args.cap_s, args.limit_s))
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# The orchestra


def isolate_home(root: Path) -> dict[str, str]:
    """XDG folders inside `root`, for this process and every process it starts."""
    folders = {
        "XDG_CONFIG_HOME": root / "config",
        "XDG_STATE_HOME": root / "state",
        "XDG_DATA_HOME": root / "data",
        "XDG_CACHE_HOME": root / "cache",
    }
    for variable, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[variable] = str(folder)
    for variable in ("OLLAMA_HOST", "OLLAMA_CONTEXT_LENGTH", "OLLAMA_KV_CACHE_TYPE", "OLLAMA_GPU_OVERHEAD"):
        os.environ.pop(variable, None)
    return {variable: str(folder) for variable, folder in folders.items()}


def clear_history() -> Path:
    """No chats kept from an earlier run: each scenario starts from its own history."""
    from llmdeck.history import history_path

    path = history_path()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def fill_history(big_messages: int, small_chats: int, small_messages: int) -> Result:
    """The stored chats the history scenario starts with: the big one first (oldest)."""
    from llmdeck.history import History

    path = clear_history()
    started = time.perf_counter()
    history = History(path)
    try:
        sizes = [big_messages] + [small_messages] * small_chats
        for number, size in enumerate(sizes, start=1):
            chat = history.create_chat(f"Stored chat {number} ({size} messages)", MODEL)
            for index in range(size):
                if index % 2 == 0:
                    history.add_message(chat.id, "user", user_text(index))
                else:
                    history.add_message(chat.id, "assistant", assistant_text(index))
    finally:
        history.close()
    return {
        "history_chats": len(sizes),
        "history_messages": sum(sizes),
        "history_file_mb": round(path.stat().st_size / MB, 1),
        "history_fill_s": round(time.perf_counter() - started, 1),
    }


def run_worker(name: str, extra: list[str], timeout_s: float) -> Result:
    """Run one scenario in a fresh process (its progress goes to stderr); its figures."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", name, *extra]
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"the {name} run did not end within {timeout_s:.0f} s (it was killed)") from None
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return dict(json.loads(line[len(RESULT_PREFIX) :]))
    raise SystemExit(f"the {name} run failed (exit {done.returncode}); its errors are above")


def median_result(results: list[Result]) -> Result:
    """Each figure's median over the runs; anything that is not a number from the first run."""
    merged: Result = {}
    for key, value in results[0].items():
        values = [result.get(key) for result in results]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        merged[key] = statistics.median(numbers) if len(numbers) == len(values) else value
    return merged


def machine() -> Result:
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = re.search(r"Model name:\s*(.+)", lscpu).group(1).strip()  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    load = os.getloadavg()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_at_start": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    }


# (label, keys): a figure, or several joined by "|" shown as "a / b"; units in the label.
REPLY_ROWS: tuple[tuple[str, str], ...] = (
    ("tokens in the reply (stand-in tokens)", "tokens_expected"),
    ("tokens reached (a capped run: what arrived)", "tokens_reached"),
    ("reply complete and exact on screen", "complete"),
    ("stopped at the cap", "capped"),
    ("start to ready, empty history (s)", "start_to_ready_s"),
    ("Enter to first token (s)", "first_token_s"),
    ("Enter to reply complete on screen (s)", "enter_to_complete_s"),
    ("  of which receiving and streaming (s)", "receive_s"),
    ("  of which the final render and save (s)", "wrap_up_s"),
    ("tokens/s, Enter to complete", "tokens_per_s"),
    ("tokens/s while receiving", "receive_tokens_per_s"),
    ("key to prompt latency median / p95 / max (ms)", "key_median_ms|key_p95_ms|key_max_ms"),
    ("  keys waiting over 100 ms (%)", "key_over_100ms_pct"),
    ("event loop wake-up lag median / max (ms)", "loop_lag_median_ms|loop_lag_max_ms"),
    ("Markdown blocks / widgets in the reply", "reply_blocks|reply_widgets"),
    ("widgets on screen before / after", "widgets_ready|widgets_after"),
    ("RSS ready / max streaming / after (MB)", "rss_ready_mb|rss_max_sampled_mb|rss_after_mb"),
    ("RSS growth while streaming (MB per 1,000 tokens)", "rss_mb_per_1k_tokens"),
    ("peak RSS of the process (MB)", "rss_peak_mb"),
)
HISTORY_ROWS: tuple[tuple[str, str], ...] = (
    ("chats / messages stored", "history_chats|history_messages"),
    ("history file (MB) / time to fill it (s)", "history_file_mb|history_fill_s"),
    ("start to restored chats on screen (s)", "start_to_restored_s"),
    ("start to ready (s)", "start_to_ready_s"),
    ("RSS before the app / after restore (MB)", "rss_before_app_mb|rss_restored_mb"),
    ("switch to the big chat: key handled (s)", "switch_key_handled_s"),
    ("switch: first app round trip after it (ms)", "switch_first_trip_ms"),
    ("switch: to last message laid out (s)", "switch_to_last_message_shown_s"),
    ("switch: to idle (s)", "switch_to_idle_s"),
    ("switch: key to prompt latency median / max (ms)", "switch_key_median_ms|switch_key_max_ms"),
    ("app round trip in the second after, median / max (ms)", "settled_trip_median_ms|settled_trip_max_ms"),
    ("messages a restored chat shows / widgets in the big chat", "restored_shown|big_chat_widgets"),
    ("RSS after the switch (MB)", "rss_after_switch_mb"),
    ("messages in the request (stand-in saw)", "request_messages"),
    ("prompt tokens in the request (stand-in counted)", "request_prompt_tokens"),
    ("reply in the big chat: tokens", "big_tokens_reached"),
    ("reply in the big chat: Enter to complete (s)", "big_enter_to_complete_s"),
    ("  of which Enter to first token (s)", "big_first_token_s"),
    ("  of which receiving and streaming (s)", "big_receive_s"),
    ("  of which the final render and save (s)", "big_wrap_up_s"),
    ("  key to prompt latency median / max (ms)", "big_key_median_ms|big_key_max_ms"),
    ("  event loop wake-up lag median / max (ms)", "big_loop_lag_median_ms|big_loop_lag_max_ms"),
    ("RSS after the reply / peak (MB)", "big_rss_after_mb|rss_peak_mb"),
)  # fmt: skip
SECTIONS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("reply", REPLY_ROWS),
    ("paced", REPLY_ROWS),
    ("history", HISTORY_ROWS),
)


def table(results: dict[str, Result]) -> list[str]:
    width = max(len(section) + 2 + len(label) for section, rows in SECTIONS for label, _ in rows)
    lines = [f"| {'figure':<{width}} | {'value':>24} |", f"| {'-' * width} | {'-' * 23}: |"]
    for section, rows in SECTIONS:
        source = results.get(section)
        if source is None:
            continue
        for label, keys in rows:
            values = [source.get(key) for key in keys.split("|")]
            if all(value is None for value in values):
                continue
            shown = " / ".join(_format(value) for value in values)
            lines.append(f"| {section + ': ' + label:<{width}} | {shown:>24} |")
    return lines


def _format(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def growth(series: list[list[float]], keys: list[list[float]], parts: int = 9) -> list[str]:
    """A reply's probes in a few spans of time: how the rate, the keys' wait and RSS change as the
    reply grows; the last span is the final render (after the last token)."""
    streaming = [sample for sample in series if sample[1] >= 0]
    if not streaming:
        return []
    lines = [
        "| span (s after Enter) | tokens at end | tokens/s in span | key wait median / max (ms) "
        "| loop lag max (ms) | RSS at end (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    end = streaming[-1][0]
    bounds = [end * i / (parts - 1) for i in range(parts)]
    spans = [(bounds[i], bounds[i + 1], False) for i in range(parts - 1)]
    if len(streaming) < len(series):
        spans.append((end, series[-1][0] + 1, True))
    tokens_before = 0.0
    for start, stop, final in spans:
        inside = [sample for sample in series if start <= sample[0] < stop or (final and sample[0] >= start)]
        waits = [latency for sent, latency in keys if start <= sent < stop or (final and sent >= start)]
        if not inside:
            continue
        tokens_end = max(sample[1] for sample in inside)
        rate = "" if final else f"{(tokens_end - tokens_before) / max(stop - start, 1e-9):,.0f}"
        wait = f"{statistics.median(waits) * 1000:,.0f} / {max(waits) * 1000:,.0f}" if waits else "n/a"
        label = f"{start:.0f}-{stop:.0f}" + (" final render" if final else "")
        shown_tokens = "(all)" if final else f"{tokens_end:,.0f}"
        lag = max(sample[3] for sample in inside) * 1000
        lines.append(f"| {label} | {shown_tokens} | {rate} | {wait} | {lag:,.0f} | {inside[-1][2]:.0f} |")
        if not final:
            tokens_before = tokens_end
    return lines


def rss_per_1k_tokens(series: list[tuple[float, int, float, float]]) -> float | None:
    """RSS growth while streaming, per 1,000 tokens received (the first to the last sample)."""
    streaming = [sample for sample in series if sample[1] > 0]
    if len(streaming) < 2 or streaming[-1][1] == streaming[0][1]:
        return None
    first, last = streaming[0], streaming[-1]
    return round((last[2] - first[2]) / (last[1] - first[1]) * 1000, 2)


# The figures shown for each run, to see the spread on a shared machine.
SPREAD_KEYS = (
    "tokens_reached",
    "enter_to_complete_s",
    "receive_tokens_per_s",
    "key_median_ms",
    "key_max_ms",
    "rss_peak_mb",
    "start_to_restored_s",
    "switch_to_idle_s",
    "big_enter_to_complete_s",
)


def write_notes(
    path: Path,
    results: dict[str, Result],
    every_run: dict[str, list[Result]],
    about: Result,
    command: str,
    runs: int,
) -> None:
    block = [NOTES_START, "", "## Machine", ""]
    block += [f"- {key}: {value}" for key, value in about.items()]
    block += [
        "",
        "## Command",
        "",
        "```",
        command,
        "```",
        "",
        f"Median of {runs} run(s) per figure (the profile: one run).",
    ]
    block += ["", "## Figures", "", *table(results), ""]
    if runs > 1:
        block += ["Each run:", ""]
        for name, name_runs in every_run.items():
            for key in SPREAD_KEYS:
                values = [run.get(key) for run in name_runs]
                if any(value is not None for value in values):
                    block.append(f"- {name} {key}: {', '.join(_format(value) for value in values)}")
        block.append("")
    reply = results.get("reply")
    if reply:
        block += [
            "## The 100k-token reply as it grew (unpaced run)",
            "",
            *growth(reply.get("series", []), reply.get("key_series", [])),
            "",
        ]
    paced = results.get("paced")
    if paced:
        block += [
            "## The paced reply as it grew",
            "",
            *growth(paced.get("series", []), paced.get("key_series", [])),
            "",
        ]
    profile = results.get("profile")
    if profile:
        block += [
            "## Profile of the 100k-token reply (cProfile, one run)",
            "",
            f"Profiled run: {profile.get('tokens_reached', 0):,} tokens reached, Enter to complete "
            f"{profile.get('enter_to_complete_s')} s under the profiler (capped: "
            f"{_format(profile.get('capped'))}).",
            "",
            "Top 10 llmdeck/Textual functions by cumulative time (message-loop wrappers left out):",
            "",
            "```",
            *profile.get("profile_cumulative", []),
            "```",
            "",
            "Top 10 functions of any module by own time:",
            "",
            "```",
            *profile.get("profile_own", []),
            "```",
            "",
            "The steps of a token's way to the screen, by cumulative time:",
            "",
            "```",
            *profile.get("profile_steps", []),
            "```",
            "",
        ]
    block.append(NOTES_END)
    text = "\n".join(block)
    if path.exists() and NOTES_START in (old := path.read_text()) and NOTES_END in old:
        before, rest = old.split(NOTES_START, 1)
        after = rest.split(NOTES_END, 1)[1]
        path.write_text(before + text + after)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    header = [
        "# Scale figures: a 100k-token reply, thousands of messages in history",
        "",
        "Written by `bench/scale.py` (the block between the markers is replaced on each run; the "
        "rest is kept).",
        "",
        "",
    ]
    path.write_text("\n".join(header) + text + "\n\n## Reading\n\n(to be written)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1, help="runs of each scenario (the median is shown)")
    parser.add_argument("--tokens", type=int, default=100_000, help="tokens in the long reply")
    parser.add_argument("--only", default="reply,paced,history,profile", help="scenarios, comma-separated")
    parser.add_argument("--cap-s", type=float, default=180.0, help="a reply is stopped after this long")
    parser.add_argument(
        "--limit-s", type=float, default=300.0, help="longest wait for a stopped reply's wrap-up"
    )
    parser.add_argument(
        "--big-chat", type=int, default=BIG_CHAT_MESSAGES, help="messages in the big stored chat"
    )
    parser.add_argument("--notes", type=Path, default=None, help="also write the figures to this file")
    # A worker runs one scenario in its own process, for the orchestra above.
    parser.add_argument("--worker", choices=("reply", "history", "profile"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--text-file", help=argparse.SUPPRESS)
    parser.add_argument("--chats", type=int, default=SMALL_CHATS + 1, help=argparse.SUPPRESS)
    parser.add_argument("--big-messages", type=int, default=BIG_CHAT_MESSAGES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    command = shlex.join([Path(sys.executable).name, "bench/scale.py", *sys.argv[1:]])
    scenarios = [name.strip() for name in args.only.split(",") if name.strip()]
    about = machine()
    results: dict[str, Result] = {}
    every_run: dict[str, list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="llmdeck-scale-") as folder:
        isolate_home(Path(folder))
        text = long_reply(args.tokens)
        paced_text = "".join(split_tokens(text)[:PACED_TOKENS])
        text_file, paced_file = Path(folder, "reply.md"), Path(folder, "paced.md")
        text_file.write_text(text)
        paced_file.write_text(paced_text)  # the first 10,000 tokens, sent at ~1,000 tok/s
        standin = StandIn()
        try:
            for name in scenarios:
                count = 1 if name == "profile" else args.runs
                print(f"{name}: {count} run(s)…", file=sys.stderr, flush=True)
                runs: list[Result] = []
                for _ in range(count):
                    extra = ["--url", standin.url, "--cap-s", str(args.cap_s), "--limit-s", str(args.limit_s)]
                    timeout_s = args.cap_s + args.limit_s + 300
                    if name in ("reply", "paced", "profile"):
                        paced = name == "paced"
                        extra += ["--text-file", str(paced_file if paced else text_file)]
                        standin.replies((paced_text, PACED_DELAY_S) if paced else (text, 0.0))
                        clear_history()
                        result = run_worker("profile" if name == "profile" else "reply", extra, timeout_s)
                        standin.requests()  # forget them
                    else:
                        extra += ["--big-messages", str(args.big_chat)]
                        filled = fill_history(args.big_chat, SMALL_CHATS, SMALL_CHAT_MESSAGES)
                        standin.replies((DEFAULT_REPLY, 0.0))
                        result = {**filled, **run_worker(name, extra, timeout_s)}
                        sent = standin.requests()
                        result["request_messages"] = sent[-1]["messages"] if sent else None
                        result["request_prompt_tokens"] = sent[-1]["prompt_tokens"] if sent else None
                    runs.append(result)
                results[name] = median_result(runs)
                every_run[name] = runs
        finally:
            standin.stop()

    print(f"llmdeck at scale · {about['cpu']}, {about['cores']} cores · Python {about['python']}")
    for line in table(results):
        print(line)
    profile = results.get("profile")
    if profile:
        print("\ntop llmdeck/Textual functions by cumulative time (profiled 100k reply):")
        for line in profile.get("profile_cumulative", []):
            print("  " + line)
        print("\ntop functions by own time:")
        for line in profile.get("profile_own", []):
            print("  " + line)
        print("\nsteps of a token's way to the screen:")
        for line in profile.get("profile_steps", []):
            print("  " + line)
    if args.notes:
        write_notes(args.notes, results, every_run, about, command, args.runs)
        print(f"\nfigures written to {args.notes}")


if __name__ == "__main__":
    main()
