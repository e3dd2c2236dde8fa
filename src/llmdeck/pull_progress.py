"""How far a pull has got, from `/api/pull`'s progress lines, and what a failed pull means.

Ollama reports one status per layer, `pulling <digest>` with that layer's `total` and
`completed` bytes (several layers may be in flight at once, and a layer already on disk or
half-downloaded starts at its `completed`), then `verifying sha256 digest`, `writing manifest`
and `success`. The whole pull is the sum over the layers seen so far.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from llmdeck.ollama_api import PULL_SUCCESS, PullProgress
from llmdeck.sanitize import inert
from llmdeck.units import decimal_size

# Long enough to smooth the bursts of a download, short enough to follow a change of speed.
SPEED_WINDOW_S = 3.0
# Below this, a rate is mostly noise from the first few chunks.
MIN_SPEED_SPAN_S = 0.5

_PHASES = {
    "pulling manifest": "reading the manifest",
    "verifying sha256 digest": "verifying the download",
    "writing manifest": "writing the manifest",
    "removing unused layers": "removing unused layers",
    "removing any unused layers": "removing unused layers",
    PULL_SUCCESS: "pulled",
}


@dataclass(frozen=True, slots=True)
class _Sample:
    at: float
    downloaded: int


class PullMeter:
    """The whole pull's bytes, speed and time left, fed one progress line at a time.

    The speed counts only bytes that arrived during this pull: a layer that was already there
    (shared with another model, or resumed from an earlier attempt) shows up complete, or part
    complete, on its first line, and must not read as gigabytes per second.
    """

    def __init__(self, window_s: float = SPEED_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._window_s = window_s
        self._layers: dict[str, tuple[int, int]] = {}
        self._downloaded = 0
        self._samples: deque[_Sample] = deque([_Sample(clock(), 0)])
        self.status = ""

    def feed(self, progress: PullProgress) -> None:
        self.status = progress.status
        if progress.digest and progress.total:
            completed = min(progress.completed or 0, progress.total)
            previous = self._layers.get(progress.digest)
            if previous is not None:
                self._downloaded += max(0, completed - previous[1])
            self._layers[progress.digest] = (progress.total, completed)
            self._record(self._clock())

    def _record(self, now: float) -> None:
        self._samples.append(_Sample(now, self._downloaded))
        self._trim(now)

    def _trim(self, now: float) -> None:
        # One sample older than the window stays: the rate is measured from it.
        horizon = now - self._window_s
        while len(self._samples) > 1 and self._samples[1].at <= horizon:
            self._samples.popleft()

    @property
    def completed(self) -> int:
        return sum(done for _, done in self._layers.values())

    @property
    def total(self) -> int:
        """Bytes of the layers seen so far; later layers add to it as Ollama names them."""
        return sum(size for size, _ in self._layers.values())

    @property
    def layers(self) -> int:
        return len(self._layers)

    @property
    def fraction(self) -> float | None:
        total = self.total
        return None if total <= 0 else self.completed / total

    def speed(self) -> float | None:
        """Bytes per second over the last few seconds, up to now: a stalled pull decays to 0."""
        now = self._clock()
        self._trim(now)
        oldest, newest = self._samples[0], self._samples[-1]
        span = now - oldest.at
        if span < MIN_SPEED_SPAN_S or self.total <= 0:
            return None
        return (newest.downloaded - oldest.downloaded) / span

    def seconds_left(self) -> float | None:
        speed = self.speed()
        if not speed or speed <= 0:
            return None
        return max(0, self.total - self.completed) / speed

    @property
    def phase(self) -> str:
        """What Ollama is doing, as a short sentence."""
        known = _PHASES.get(self.status)
        if known is not None:
            return known
        if self.status.startswith("pulling "):
            return "downloading" if self.layers <= 1 else f"downloading ({self.layers} layers)"
        return inert(self.status) or "starting"

    @property
    def downloading(self) -> bool:
        return self.status.startswith("pulling ") and self.status != "pulling manifest"

    def describe(self) -> str:
        """`1.2 GB of 4.9 GB · 38.5 MB/s · 1 min 36 s left`, or the phase before any layer."""
        total = self.total
        if total <= 0:
            return self.phase + "…"
        parts = [f"{decimal_size(self.completed)} of {decimal_size(total)}"]
        if self.downloading:
            speed = self.speed()
            if speed is None:
                parts.append("measuring speed…")
            elif speed <= 0:
                parts.append("stalled")
            else:
                parts.append(f"{decimal_size(speed)}/s")
                left = self.seconds_left()
                if left is not None:
                    parts.append(f"{duration(left)} left")
        else:
            parts.append(self.phase)
        return " · ".join(parts)


def duration(seconds: float) -> str:
    """`45 s`, `1 min 36 s`, `2 h 5 min`: as precise as a countdown is worth."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# Ollama passes Go's error text through: these are the words its registry client and the OS use.
_DISK_FULL = re.compile(r"no space left on device|disk quota exceeded|not enough space", re.IGNORECASE)
_NETWORK = re.compile(
    r"dial tcp|no such host|i/o timeout|connection refused|connection reset|TLS handshake timeout"
    r"|network is unreachable|unexpected EOF|max retries exceeded|temporary failure in name resolution"
    r"|server misbehaving|Client\.Timeout",
    re.IGNORECASE,
)
_UNKNOWN_MODEL = re.compile(r"file does not exist|manifest unknown|not found", re.IGNORECASE)
_NO_PERMISSION = re.compile(r"permission denied|read-only file system", re.IGNORECASE)


def explain_pull_error(model: str, message: str) -> str:
    """What a failed pull means and what to do, from Ollama's error text (kept at the end)."""
    words = inert(message).strip()
    name = inert(model)
    if _DISK_FULL.search(words):
        return (
            f"the disk that holds Ollama's models is full: free space there, or move the store "
            f"elsewhere with OLLAMA_MODELS in the server's environment, then pull {name} again "
            f"(Ollama: {words})"
        )
    if _NETWORK.search(words):
        return (
            f"network problem reaching the model registry: check the connection (and any proxy) of "
            f"the machine Ollama runs on, then pull {name} again; the part already downloaded is "
            f"kept (Ollama: {words})"
        )
    if _NO_PERMISSION.search(words):
        return (
            f"Ollama cannot write to its models folder: the user the server runs as needs write "
            f"access there (`llmdeck doctor` checks it) (Ollama: {words})"
        )
    if _UNKNOWN_MODEL.search(words):
        return (
            f"no model called {name} in the Ollama library: check the name at ollama.com/library "
            f"(Ollama: {words})"
        )
    return words or f"the pull of {name} failed without a reason from Ollama"
