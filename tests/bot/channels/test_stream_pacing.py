"""The stream's pace with a fake clock: the interval after a send, the back-off after throttling."""

from __future__ import annotations

from bot.channels.stream_pacing import MAX_BACK_OFF_S, StreamPacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_back_off_doubles_honours_retry_after_and_resets_after_a_send() -> None:
    clock = Clock()
    pacer = StreamPacer(1.0, clock)
    assert pacer.throttled(None) == 2.0
    assert pacer.throttled(None) == 4.0
    assert pacer.throttled(1.0) == 4.0, "at least the doubled back-off's half"
    assert pacer.throttled(100.0) == MAX_BACK_OFF_S, "a huge Retry-After is capped"
    pacer.sent()
    assert pacer.throttled(1.0) == 1.0, "after a send, Retry-After: 1 means one second"


async def test_wait_returns_at_once_when_the_interval_is_over() -> None:
    clock = Clock()
    pacer = StreamPacer(1.0, clock)
    await pacer.wait()  # nothing sent yet
    pacer.sent()
    clock.now += 5
    await pacer.wait()
