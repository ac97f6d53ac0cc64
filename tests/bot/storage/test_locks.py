"""Per-conversation locks across replicas: exclusion and bounded waits on every shared store; on
PostgreSQL and Redis also leases that outlive no dead holder, renewal, and fencing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
from botbuilder.core import Storage

from bot.storage import LockLost, LockTimeout, backend_of
from bot.storage.fencing import current_fence
from bot.storage.leases import QUEUE_TTL_S, LeaseLocks
from bot.storage.locks import ConversationLocks
from bot.storage.postgres import PostgresStorage
from bot.storage.redis import RedisStorage
from bot.storage.sqlite import SqliteLocks, SqliteStorage
from tests.services import namespace_on

KEY = "msteams/conversations/19:abc@thread.v2"
LEASE_S = 0.4

Replica = tuple[Storage, ConversationLocks]


@asynccontextmanager
async def replicas_on(kind: str, tmp_path: Path) -> AsyncIterator[Callable[[], Replica]]:
    """A function that starts one more replica (its own storage and locks) on one shared store."""
    opened: list[Replica] = []
    async with AsyncExitStack() as stack:
        if kind == "sqlite":
            url, namespace = str(tmp_path / "state.db"), ""
        else:
            url, namespace = await stack.enter_async_context(namespace_on(kind))

        def replica() -> Replica:
            storage: Storage
            if kind == "sqlite":
                storage = SqliteStorage(url)
            elif kind == "postgresql":
                storage = PostgresStorage(url, namespace=namespace)
            else:
                storage = RedisStorage(url, namespace=namespace)
            opened.append((storage, backend_of(storage).locks(lease_s=LEASE_S)))
            return opened[-1]

        try:
            yield replica
        finally:
            for storage, locks in opened:
                await locks.close()
                await storage.close()  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
async def replica(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[], Replica]]:
    async with replicas_on(request.param, tmp_path) as make:
        yield make


@pytest.fixture(params=["postgresql", "redis"])
async def leased(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[], Replica]]:
    """Replicas whose locks are leases (the shared database servers)."""
    async with replicas_on(request.param, tmp_path) as make:
        yield make


# --- every shared store ---------------------------------------------------------------------------


async def test_turns_on_three_replicas_never_overlap(replica: Callable[[], Replica]) -> None:
    replicas = [replica() for _ in range(3)]
    inside, most_inside, turns = 0, 0, 0

    async def turn(locks: ConversationLocks) -> None:
        nonlocal inside, most_inside, turns
        async with locks.hold(KEY, ttl_s=10, wait_s=10):
            inside += 1
            most_inside = max(most_inside, inside)
            await asyncio.sleep(0.005)
            turns += 1
            inside -= 1

    await asyncio.gather(*(turn(locks) for _, locks in replicas for _ in range(4)))
    assert (turns, most_inside) == (12, 1)


async def test_a_busy_conversation_times_out_and_others_are_free(
    replica: Callable[[], Replica],
) -> None:
    (_, a), (_, b) = replica(), replica()
    async with a.hold(KEY, ttl_s=10, wait_s=1):
        started = time.monotonic()
        with pytest.raises(LockTimeout, match="busy"):
            async with b.hold(KEY, ttl_s=10, wait_s=0.3):
                pass
        assert 0.3 <= time.monotonic() - started < 3  # not the holder's ttl_s of 10
        async with b.hold(KEY + "/other", ttl_s=10, wait_s=0.3):
            pass  # another conversation is not blocked
    async with b.hold(KEY, ttl_s=10, wait_s=0.3):
        pass  # released on exit


# --- leases (PostgreSQL, Redis) -------------------------------------------------------------------


def lease_locks(locks: ConversationLocks) -> LeaseLocks:
    assert isinstance(locks, LeaseLocks)
    return locks


async def test_a_dead_holder_frees_the_conversation_within_one_lease(
    leased: Callable[[], Replica],
) -> None:
    (_, dead), (_, alive) = leased(), leased()
    ticket = await lease_locks(dead)._enqueue(KEY)
    assert await lease_locks(dead)._acquire(KEY, ticket, LEASE_S) is not None  # then it dies
    started = time.monotonic()
    async with alive.hold(KEY, ttl_s=10, wait_s=5):
        waited = time.monotonic() - started
    # It waited for the lease to run out; succeeding within wait_s shows it did not wait for more
    # (a dead holder never releases). No tight upper bound: CI machines stall for a second.
    assert waited > LEASE_S * 0.5


async def test_a_dead_sqlite_holder_frees_the_conversation_within_one_lease(
    tmp_path: Path,
) -> None:
    # A bot killed mid-turn on a laptop: its restart must not wait for the dead process.
    async with replicas_on("sqlite", tmp_path) as replica:
        (_, dead), (_, alive) = replica(), replica()
        assert isinstance(dead, SqliteLocks)
        assert await dead._worker.run(dead._try_acquire, KEY, LEASE_S)  # then it dies
        started = time.monotonic()
        async with alive.hold(KEY, ttl_s=10, wait_s=5):
            waited = time.monotonic() - started
    # It waited for the lease to run out; succeeding within wait_s shows it did not wait for more
    # (a dead holder never releases). No tight upper bound: CI machines stall for a second.
    assert waited > LEASE_S * 0.5


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "redis"])
async def test_a_live_holder_renews_its_lease_until_ttl(kind: str, tmp_path: Path) -> None:
    async with replicas_on(kind, tmp_path) as leased:
        await renews_until_ttl(leased)


async def renews_until_ttl(leased: Callable[[], Replica]) -> None:
    (_, a), (_, b) = leased(), leased()
    ttl_s = 4 * LEASE_S
    started = time.monotonic()
    async with a.hold(KEY, ttl_s=ttl_s, wait_s=1):
        with pytest.raises(LockTimeout):  # held for longer than one lease: renewed
            async with b.hold(KEY, ttl_s=10, wait_s=2 * LEASE_S):
                pass
        # A holder stuck past ttl_s stops renewing, so the conversation frees after at most ttl_s.
        async with b.hold(KEY, ttl_s=10, wait_s=ttl_s):
            held_for = time.monotonic() - started
    assert ttl_s - LEASE_S <= held_for < ttl_s + 0.5


async def test_a_stalled_holders_writes_are_refused_once_another_holds(
    leased: Callable[[], Replica], monkeypatch: pytest.MonkeyPatch
) -> None:
    (storage_a, a), (storage_b, b) = leased(), leased()

    async def stalled(key: str, fence: int, lease_s: float) -> bool:
        return True  # as if the process were paused: the lease is not really renewed

    monkeypatch.setattr(lease_locks(a), "_renew", stalled)
    b_wrote = asyncio.Event()

    async def newer_turn() -> None:
        async with b.hold(KEY, ttl_s=10, wait_s=5):
            await storage_b.write({KEY: {"by": "b"}})
            b_wrote.set()

    async with a.hold(KEY, ttl_s=10, wait_s=1):
        await storage_a.write({KEY: {"by": "a"}})  # still the holder: written
        newer = asyncio.create_task(newer_turn())
        await asyncio.wait_for(b_wrote.wait(), 5)
        with pytest.raises(LockLost):
            await storage_a.write({KEY: {"by": "a, too late"}})
    await newer
    assert (await storage_a.read([KEY]))[KEY]["by"] == "b"
    await storage_a.write({KEY: {"by": "a, outside any lock"}})  # no fence: an ordinary write


async def test_fences_grow_across_replicas(leased: Callable[[], Replica]) -> None:
    fences = []
    for storage, locks in [leased(), leased()] * 2:
        async with locks.hold(KEY, ttl_s=10, wait_s=1):
            fence = current_fence(storage)
            assert fence is not None and fence.key == KEY
            fences.append(fence.token)
        assert current_fence(storage) is None
    assert fences == sorted(set(fences))


async def test_waiters_take_turns_in_line(leased: Callable[[], Replica]) -> None:
    """The replica that just finished a turn does not jump ahead of ones already waiting."""
    (_, a), (_, b), (_, c) = leased(), leased(), leased()
    for waiter in (b, c):  # slow pollers: without a line, "a again" would get in first
        lease_locks(waiter)._max_poll_s = 0.3
    order: list[str] = []
    b_waiting, c_waiting = asyncio.Event(), asyncio.Event()

    async def turn(name: str, locks: ConversationLocks, waiting: asyncio.Event | None) -> None:
        if waiting is not None:
            waiting.set()
        async with locks.hold(KEY, ttl_s=10, wait_s=5):
            order.append(name)
            await asyncio.sleep(0.05)

    async with a.hold(KEY, ttl_s=10, wait_s=1):
        order.append("a")
        waiters = [asyncio.create_task(turn("b", b, b_waiting))]
        await b_waiting.wait()
        await asyncio.sleep(0.1)  # b has its ticket
        waiters.append(asyncio.create_task(turn("c", c, c_waiting)))
        await c_waiting.wait()
        await asyncio.sleep(0.1)
    await turn("a again", a, None)  # straight after its own turn: behind b and c
    await asyncio.gather(*waiters)
    assert order == ["a", "b", "c", "a again"]


async def test_a_dead_waiter_holds_the_line_up_briefly(leased: Callable[[], Replica]) -> None:
    (_, dead), (_, alive) = leased(), leased()
    await lease_locks(dead)._enqueue(KEY)  # in line, then it dies
    started = time.monotonic()
    async with alive.hold(KEY, ttl_s=10, wait_s=QUEUE_TTL_S + 2):
        waited = time.monotonic() - started
    assert waited > QUEUE_TTL_S * 0.5  # and within wait_s: the dead waiter's place expired
