import pytest

from llmdeck.chat import ChatSession, TokenMeter, describe_final, per_second
from llmdeck.ollama_api import GenerationStats


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stats(eval_count: int = 93, eval_ns: int = 2_515_884_708) -> GenerationStats:
    return GenerationStats(
        done_reason="stop",
        eval_count=eval_count,
        eval_duration_ns=eval_ns,
        prompt_eval_count=26,
        prompt_eval_duration_ns=130_000_000,
        load_duration_ns=1_500_000_000,
        total_duration_ns=4_000_000_000,
    )


def test_decode_rate_matches_ollama_verbose() -> None:
    # ollama/ollama#11815: 93 tokens in 2.515884708 s, printed by `ollama run --verbose` as 36.97.
    figures = TokenMeter().finish(stats())
    assert figures.decode_tokens_per_s == pytest.approx(36.965, abs=1e-3)
    assert "36.97 tok/s" in describe_final(figures)
    assert figures.prompt_tokens_per_s == pytest.approx(200.0)


def test_missing_or_zero_durations_give_no_rate_instead_of_a_wrong_one() -> None:
    assert per_second(10, 0) is None
    assert per_second(10, None) is None
    assert per_second(None, 5) is None
    figures = TokenMeter().finish(stats(eval_count=0, eval_ns=0))
    assert figures.decode_tokens_per_s is None
    # No decode rate is shown at all, rather than 0 or infinity; the prompt rate still is.
    assert describe_final(figures).startswith("prompt 200.0 tok/s")


def test_live_rate_follows_the_current_speed_over_the_window() -> None:
    clock = FakeClock()
    meter = TokenMeter(window_s=2.0, clock=clock)
    clock.now += 1.5  # model load before the first token
    assert meter.live_rate() is None
    for _ in range(50):  # a slow start: 10 tok/s
        meter.token()
        clock.now += 0.1
    assert meter.live_rate() == pytest.approx(10.0, rel=0.02)
    for _ in range(200):  # then 100 tok/s
        meter.token()
        clock.now += 0.01
    assert meter.live_rate() == pytest.approx(100.0, rel=0.02)
    assert meter.tokens == 250
    assert meter.time_to_first_token_s == pytest.approx(1.5)


def test_session_keeps_turns_and_takes_back_an_unanswered_prompt() -> None:
    session = ChatSession(model="llama3.2:3b")
    assert session.ask("hi") == [{"role": "user", "content": "hi"}]
    session.answered("hello")
    messages = session.ask("more")
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert session.withdraw() == "more"
    assert session.withdraw() == ""  # the assistant's turn is never taken back
    assert len(session.turns) == 2
