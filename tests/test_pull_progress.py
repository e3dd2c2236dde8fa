"""The pull meter: the whole pull's bytes, speed and time left from Ollama's per-layer lines, on a
fake clock; and what a failed pull's error means."""

from __future__ import annotations

import pytest

from llmdeck.ollama_api import PullProgress
from llmdeck.pull_progress import PullMeter, duration, explain_pull_error

MB = 1_000_000
GB = 1_000_000_000
WEIGHTS = "sha256:" + "a" * 64
TEMPLATE = "sha256:" + "b" * 64


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def layer(digest: str, total: int, completed: int | None) -> PullProgress:
    return PullProgress(f"pulling {digest[7:19]}", digest, total, completed)


def test_bytes_are_summed_over_the_layers_and_the_line_reads_like_a_download() -> None:
    clock = Clock()
    meter = PullMeter(clock=clock)
    meter.feed(PullProgress("pulling manifest"))
    assert meter.describe() == "reading the manifest…"
    assert meter.fraction is None
    meter.feed(layer(WEIGHTS, 4_900 * MB, None))  # Ollama's first line of a layer: no bytes yet
    for second in range(1, 31):
        clock.now += 1
        meter.feed(layer(WEIGHTS, 4_900 * MB, second * 40 * MB))
    assert meter.completed == 1_200 * MB and meter.total == 4_900 * MB
    assert meter.speed() == pytest.approx(40 * MB)
    assert meter.seconds_left() == pytest.approx(3_700 / 40)
    assert meter.describe() == "1.2 GB of 4.9 GB · 40.0 MB/s · 1 min 32 s left"
    assert meter.phase == "downloading"
    # A second layer adds to both sides.
    meter.feed(layer(TEMPLATE, 100 * MB, 0))
    assert (meter.completed, meter.total, meter.layers) == (1_200 * MB, 5_000 * MB, 2)
    assert meter.phase == "downloading (2 layers)"


def test_the_speed_follows_the_last_seconds_not_the_average() -> None:
    clock = Clock()
    meter = PullMeter(window_s=3.0, clock=clock)
    meter.feed(layer(WEIGHTS, 10 * GB, 0))
    done = 0
    for _ in range(20):  # 20 s at 10 MB/s
        clock.now += 1
        done += 10 * MB
        meter.feed(layer(WEIGHTS, 10 * GB, done))
    for _ in range(5):  # then 5 s at 100 MB/s
        clock.now += 1
        done += 100 * MB
        meter.feed(layer(WEIGHTS, 10 * GB, done))
    assert meter.speed() == pytest.approx(100 * MB)


def test_a_stalled_pull_decays_to_zero_and_says_so() -> None:
    clock = Clock()
    meter = PullMeter(window_s=3.0, clock=clock)
    meter.feed(layer(WEIGHTS, GB, 0))
    clock.now += 1
    meter.feed(layer(WEIGHTS, GB, 50 * MB))
    clock.now += 10  # nothing arrives
    assert meter.speed() == 0
    assert meter.seconds_left() is None
    assert meter.describe() == "50.0 MB of 1.0 GB · stalled"


def test_layers_already_there_count_as_done_but_not_as_speed() -> None:
    clock = Clock()
    meter = PullMeter(clock=clock)
    # A layer shared with an installed model, and one resumed half-way from an earlier attempt.
    meter.feed(layer(TEMPLATE, 2 * GB, 2 * GB))
    meter.feed(layer(WEIGHTS, 4 * GB, 1 * GB))
    clock.now += 2
    meter.feed(layer(WEIGHTS, 4 * GB, 1 * GB + 20 * MB))
    assert meter.completed == 3 * GB + 20 * MB
    assert meter.speed() == pytest.approx(10 * MB)


def test_no_speed_until_half_a_second_has_passed() -> None:
    clock = Clock()
    meter = PullMeter(clock=clock)
    meter.feed(layer(WEIGHTS, GB, 0))
    clock.now += 0.1
    meter.feed(layer(WEIGHTS, GB, MB))
    assert meter.speed() is None
    assert meter.describe() == "1.0 MB of 1.0 GB · measuring speed…"


def test_the_phases_after_the_download_are_short_sentences() -> None:
    meter = PullMeter(clock=Clock())
    meter.feed(layer(WEIGHTS, GB, GB))
    for status, phase in [
        ("verifying sha256 digest", "verifying the download"),
        ("writing manifest", "writing the manifest"),
        ("removing unused layers", "removing unused layers"),
        ("success", "pulled"),
    ]:
        meter.feed(PullProgress(status))
        assert meter.phase == phase
        assert meter.describe() == f"1.0 GB of 1.0 GB · {phase}"
    meter.feed(PullProgress("something new \x1b[2J"))
    assert meter.phase == "something new [2J"  # unknown words are shown, inert


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0 s"), (45, "45 s"), (96, "1 min 36 s"), (3_599, "59 min 59 s"), (7_500, "2 h 5 min")],
)
def test_durations_read_like_a_countdown(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


@pytest.mark.parametrize(
    ("message", "start"),
    [
        ("pull model manifest: file does not exist", "no model called llama9:1b in the Ollama library"),
        ("model 'llama9:1b' not found", "no model called llama9:1b in the Ollama library"),
        (
            "write /models/blobs/sha256-1-partial-0: no space left on device",
            "the disk that holds Ollama's models is full",
        ),
        (
            'pull model manifest: Get "https://registry.ollama.ai/v2/library/llama9/manifests/1b": '
            "dial tcp: lookup registry.ollama.ai: no such host",
            "network problem reaching the model registry",
        ),
        ("max retries exceeded: read tcp 10.0.0.2:5000: i/o timeout", "network problem"),
        ("Get https://registry.ollama.ai/v2/: net/http: TLS handshake timeout", "network problem"),
        ("dial tcp 104.21.75.227:443: connect: connection refused", "network problem"),
        ("mkdir /usr/share/ollama/.ollama/models/blobs: permission denied", "Ollama cannot write"),
    ],
)
def test_a_failed_pull_says_what_to_do_and_keeps_ollamas_words(message: str, start: str) -> None:
    explained = explain_pull_error("llama9:1b", message)
    assert explained.startswith(start)
    assert explained.endswith(f"(Ollama: {message})")


def test_what_to_do_is_specific_to_the_cause() -> None:
    unknown = explain_pull_error("x", "pull model manifest: file does not exist")
    assert "check the name at ollama.com/library" in unknown
    full = explain_pull_error("x", "no space left on device")
    assert "free space" in full and "OLLAMA_MODELS" in full
    assert "check the connection" in explain_pull_error("x", "dial tcp: i/o timeout")


def test_an_error_of_another_kind_is_ollamas_words_made_inert() -> None:
    assert explain_pull_error("x", "invalid model name") == "invalid model name"
    assert explain_pull_error("x", "boom \x1b]0;pwned\x07") == "boom ]0;pwned"
    assert explain_pull_error("x", "") == "the pull of x failed without a reason from Ollama"
