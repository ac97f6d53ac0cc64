from __future__ import annotations

import asyncio

import pytest

from bot.storage import LocalLocks
from bot.turn_runner import RunnerBusy, RunnerLimits, TurnRunner


async def test_one_conversation_runs_in_order_and_others_in_parallel() -> None:
    runner = TurnRunner(LocalLocks(), RunnerLimits())
    events: list[str] = []

    def turn(name: str, delay: float):
        async def run() -> str:
            events.append(f"start {name}")
            await asyncio.sleep(delay)
            events.append(f"end {name}")
            return name

        return run

    a1 = runner.submit("a", turn("a1", 0.05))
    a2 = runner.submit("a", turn("a2", 0.0))
    b1 = runner.submit("b", turn("b1", 0.0))
    assert a1 and a2 and b1
    assert await asyncio.gather(a1, a2, b1) == ["a1", "a2", "b1"]
    assert events.index("end a1") < events.index("start a2")
    assert events.index("end b1") < events.index("end a1"), "b did not wait for a"
    assert not runner.busy and runner.queued == 0


async def test_bounded_queue_and_duplicates() -> None:
    runner = TurnRunner(LocalLocks(), RunnerLimits(max_queued=2))
    gate = asyncio.Event()
    first = runner.submit("a", gate.wait, activity_id="x")
    assert runner.submit("a", gate.wait, activity_id="x") is None
    runner.submit("b", gate.wait)
    with pytest.raises(RunnerBusy):
        runner.submit("c", gate.wait)
    gate.set()
    assert first is not None and await first is True


async def test_turn_timeout_frees_the_conversation() -> None:
    runner = TurnRunner(LocalLocks(), RunnerLimits(turn_timeout_s=0.05))
    stuck = runner.submit("a", asyncio.Event().wait)
    after = runner.submit("a", lambda: asyncio.sleep(0))
    assert stuck is not None and after is not None
    with pytest.raises(TimeoutError):
        await stuck
    assert await after is None


async def test_drain_refuses_new_turns() -> None:
    runner = TurnRunner(LocalLocks(), RunnerLimits())
    done = runner.submit("a", lambda: asyncio.sleep(0.05, "ok"))
    assert await runner.drain(1.0) is True
    assert done is not None and done.result() == "ok"
    with pytest.raises(RunnerBusy):
        runner.submit("a", lambda: asyncio.sleep(0))
