from __future__ import annotations

import asyncio
import time

import pytest

from models import (
    GenerationParams,
    ModelError,
    ModelOverloaded,
    ModelShuttingDown,
    ModelTimeout,
    complete,
)
from models.api import ChatMessage
from models.fake import FakeChatModel
from models.guard import GuardedChatModel, GuardLimits

HI = [ChatMessage("user", "hi there")]
PARAMS = GenerationParams()


async def test_passes_replies_through() -> None:
    guard = GuardedChatModel(FakeChatModel(), GuardLimits())
    assert await complete(guard, HI, PARAMS) == "fake: hi there"
    assert guard.pending == 0


async def test_deadline_closes_the_inner_stream() -> None:
    inner = FakeChatModel(delay=0.05, reply=lambda _: "word " * 100)
    guard = GuardedChatModel(inner, GuardLimits(deadline_s=0.2))
    started = time.perf_counter()
    with pytest.raises(ModelTimeout):
        await complete(guard, HI, PARAMS)
    assert time.perf_counter() - started < 0.4
    produced = inner.pieces_produced
    await asyncio.sleep(0.2)
    assert inner.pieces_produced == produced, "generation stopped"
    assert guard.pending == 0


async def test_overload_is_immediate() -> None:
    guard = GuardedChatModel(FakeChatModel(hang=True), GuardLimits(max_pending=1, retry_after_s=3))
    first = asyncio.create_task(complete(guard, HI, PARAMS))
    await asyncio.sleep(0.01)
    with pytest.raises(ModelOverloaded) as busy:
        await complete(guard, HI, PARAMS)
    assert busy.value.retry_after == 3
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert guard.pending == 0


async def test_unexpected_errors_become_model_errors() -> None:
    guard = GuardedChatModel(FakeChatModel(fail_after=1, error=RuntimeError("boom")), GuardLimits())
    with pytest.raises(ModelError) as error:
        await complete(guard, HI, PARAMS)
    assert isinstance(error.value.__cause__, RuntimeError)


async def test_abort_all_ends_streams_in_flight() -> None:
    guard = GuardedChatModel(FakeChatModel(hang=True), GuardLimits())
    task = asyncio.create_task(complete(guard, HI, PARAMS))
    await asyncio.sleep(0.01)
    guard.abort_all()
    with pytest.raises(ModelShuttingDown):
        await task
    with pytest.raises(ModelShuttingDown):
        await complete(guard, HI, PARAMS)


async def test_a_deadline_passing_while_the_consumer_works_between_pieces_is_a_timeout() -> None:
    inner = FakeChatModel(delay=0.01, reply=lambda _: "word " * 100)
    guard = GuardedChatModel(inner, GuardLimits(deadline_s=0.2))

    async def consume() -> None:
        async for _ in guard.stream(HI, PARAMS):
            await asyncio.to_thread(time.sleep, 0.05)  # e.g. counting the reply's tokens

    started = time.perf_counter()
    [outcome] = await asyncio.gather(asyncio.create_task(consume()), return_exceptions=True)
    assert isinstance(outcome, ModelTimeout), f"ended with {outcome!r}"
    assert time.perf_counter() - started < 0.5
    produced = inner.pieces_produced
    await asyncio.sleep(0.1)
    assert inner.pieces_produced == produced, "generation stopped"
    assert guard.pending == 0


async def test_a_consumer_cancelled_between_pieces_is_cancelled_not_timed_out() -> None:
    guard = GuardedChatModel(FakeChatModel(reply=lambda _: "word " * 100), GuardLimits())

    async def consume() -> None:
        async for _ in guard.stream(HI, PARAMS):
            await asyncio.sleep(1)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    [outcome] = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(outcome, asyncio.CancelledError)
    assert guard.pending == 0
