"""Where llmdeck's work goes while a reply streams: the paced stream of bench/perf.py (1,500 tokens
at 100 tokens/s) measured in instructions (Linux `perf`, from Enter to the last word), for llmdeck
whole and with one part switched off at a time, beside two floors:

- full: llmdeck as it is;
- reply computed, not shown: each frame renders the reply's lines but does not refresh the
  widget until the reply ends (the screen updates and layouts the frames cause are gone);
- reply not drawn: the reply is drawn once, when it ends (frames and growths gone; its final
  render, ~0.1 G, stays);
- no gauges: hardware samples are not shown (nor is the machine planned for, so the models pane
  has no fits: an approximation);
- grown 16 lines at a time: half the layouts of the default 8 (the saving is about what half the
  layouts cost);
- a Textual app that only reads the stream (bench/peers.py `textual`), and the client alone.

The parts are switched off by a `sitecustomize` module that Python loads first in llmdeck's
process (PYTHONPATH points at a temporary folder holding it); nothing in llmdeck knows of it.
Runs take turns, so a slower minute weighs on every variant alike. Needs `perf`.

    python bench/parts.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from perf import (
    PACED_TOKENS,
    TOKEN_DELAY_S,
    StandIn,
    answer,
    llmdeck_command,
    peer_command,
    run_stream,
    write_history,
)
from terminal import MARKER, find_llmdeck

PART_VARIABLE = "LLMDECK_BENCH_PART"
# Loaded by Python at start-up in llmdeck's process only (its PYTHONPATH alone points here).
SITECUSTOMIZE = f'''
import os

part = os.environ.get("{PART_VARIABLE}", "")
if part == "reply-computed-not-shown":
    from llmdeck.ui import reply_view

    refresh = reply_view.ReplyView.refresh

    def refresh_only_at_the_end(self, *regions, **flags):
        return refresh(self, *regions, **flags) if self._complete else self

    reply_view.ReplyView.refresh = refresh_only_at_the_end
elif part == "reply-not-drawn":
    from llmdeck.ui import reply_view

    draw = reply_view.ReplyView._frame

    def frame_only_at_the_end(self, height_before=None):
        if height_before is None:
            self._frame_pending = False
            return
        draw(self, height_before)

    reply_view.ReplyView._frame = frame_only_at_the_end
elif part == "no-gauges":
    from llmdeck.ui import app

    app.LlmdeckApp.on_hardware_sampled = lambda self, message: None
elif part == "grown-16-lines":
    from llmdeck.ui import reply_view

    reply_view.STREAMING_HEIGHT_STEP = 16
'''
PARTS = ("full", "reply-computed-not-shown", "reply-not-drawn", "no-gauges", "grown-16-lines")
FLOORS = ("textual", "client")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="llmdeck-parts-")
    for variable in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        os.environ[variable] = os.path.join(home, variable.lower())
    hook = Path(home) / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    llmdeck = find_llmdeck()
    text = answer(PACED_TOKENS)
    billions: dict[str, list[float]] = {name: [] for name in (*PARTS, *FLOORS)}
    with StandIn() as standin:
        for run in range(args.runs):
            print(f"run {run + 1} of {args.runs}", flush=True)
            for name in billions:
                time.sleep(2.0)  # the previous process has let go of the CPU
                write_history(0)
                if name in PARTS:
                    os.environ["PYTHONPATH"] = str(hook)
                    os.environ[PART_VARIABLE] = name
                    command, ready, keys = llmdeck_command(llmdeck, standin.url), MARKER, b"hi\r"
                else:
                    os.environ.pop("PYTHONPATH", None)
                    command, ready, keys = peer_command(name, standin.url), b"PEER-READY", b"\r"
                stream = run_stream(command, ready, keys, standin, text, 0, TOKEN_DELAY_S, 60)
                os.environ.pop("PYTHONPATH", None)
                if stream.instructions_millions is None:
                    raise SystemExit("no instruction count: is Linux `perf` installed and allowed?")
                billions[name].append(stream.instructions_millions / 1000)
                print(f"  {name}: {billions[name][-1]:.2f} G", flush=True)
    medians = {name: statistics.median(values) for name, values in billions.items()}
    full = medians["full"]
    print()
    print("| llmdeck, paced 1,500 tokens at 100 tok/s | instructions | less than full |")
    print("|---|---|---|")
    for name, value in medians.items():
        print(f"| {name} | {value:.2f} G | {full - value:+.2f} G |")
    print(f"\nMedian of {args.runs} run(s), turn about.")


if __name__ == "__main__":
    main()
