"""The inbox contract (bot/storage/inbox.py), on every store: memory, SQLite, PostgreSQL, Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from botbuilder.core import MemoryStorage, Storage

from bot.storage import Inbox, InboxEntry, backend_of
from bot.storage.postgres import PostgresStorage
from bot.storage.redis import RedisStorage
from bot.storage.sqlite import SqliteStorage
from tests.services import namespace_on

CONVERSATION = "msteams/conversations/a:1 é"
OpenInbox = Callable[[], Inbox]  # another replica's inbox on the same store


@asynccontextmanager
async def on_store(kind: str, tmp_path: Path) -> AsyncIterator[OpenInbox]:
    storages: list[Storage] = []
    inboxes: list[Inbox] = []

    def opener(make: Callable[[], Storage]) -> OpenInbox:
        def open_one() -> Inbox:
            storages.append(make())
            inboxes.append(backend_of(storages[-1]).inbox())
            return inboxes[-1]

        return open_one

    try:
        if kind == "memory":
            memory = MemoryStorage()  # one process: every "replica" shares the one inbox
            shared = backend_of(memory).inbox()
            yield lambda: shared
        elif kind == "sqlite":
            yield opener(lambda: SqliteStorage(tmp_path / "state.db"))
        else:
            async with namespace_on(kind) as (url, namespace):
                cls = PostgresStorage if kind == "postgresql" else RedisStorage
                yield opener(lambda: cls(url, namespace=namespace))
    finally:
        for inbox in inboxes:
            await inbox.close()
        for storage in storages:
            await storage.close()  # type: ignore[attr-defined]


@pytest.fixture(params=["memory", "sqlite", "postgresql", "redis"])
async def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenInbox]:
    async with on_store(request.param, tmp_path) as open_one:
        yield open_one


async def test_entries_come_out_oldest_first_whichever_replica_took_them(
    replicas: OpenInbox,
) -> None:
    a, b = replicas(), replicas()
    seqs = [await (a if n % 2 else b).put(CONVERSATION, f"id{n}", f"body {n}") for n in range(5)]
    assert all(seqs) and seqs == sorted(seqs)
    await a.put("other", "id0", "elsewhere")
    seen = []
    while (entry := await b.first(CONVERSATION)) is not None:
        seen.append(entry)
        await a.remove(entry)
    assert [e.body for e in seen] == [f"body {n}" for n in range(5)]
    assert [e.activity_id for e in seen] == [f"id{n}" for n in range(5)]
    assert {e.conversation for e in seen} == {CONVERSATION}
    assert (await a.first("other")) == InboxEntry(seqs[-1] + 1, "other", "id0", "elsewhere")


async def test_a_waiting_activity_id_is_refused_until_its_turn_has_run(replicas: OpenInbox) -> None:
    a, b = replicas(), replicas()
    assert await a.put(CONVERSATION, "x", "first") is not None
    assert await b.put(CONVERSATION, "x", "retry") is None, "a channel's retry queued twice"
    assert await b.put("other", "x", "same id, other conversation") is not None
    assert await b.put(CONVERSATION, None, "no id") is not None
    assert await b.put(CONVERSATION, None, "no id again") is not None
    entry = await b.first(CONVERSATION)
    assert entry is not None and entry.body == "first"
    await b.remove(entry)
    await b.remove(entry)  # idempotent
    assert await a.put(CONVERSATION, "x", "after its turn") is not None
    bodies = []
    while (entry := await a.first(CONVERSATION)) is not None:
        bodies.append(entry.body)
        await a.remove(entry)
    assert bodies == ["no id", "no id again", "after its turn"]


async def test_waiting_since_names_conversations_left_waiting(replicas: OpenInbox) -> None:
    a, b = replicas(), replicas()
    await a.put("old", "1", "left behind by a dead replica")
    await asyncio.sleep(0.3)
    await a.put("new", "1", "just acknowledged")
    assert await b.waiting_since(0.2) == ["old"]
    await asyncio.sleep(0.01)  # "longer than": Redis counts in milliseconds, loopback is faster
    assert sorted(await b.waiting_since(0.0)) == ["new", "old"]
    entry = await b.first("old")
    assert entry is not None
    await b.remove(entry)
    assert await b.waiting_since(0.2) == []


async def test_concurrent_puts_get_distinct_increasing_seqs(replicas: OpenInbox) -> None:
    inboxes = [replicas() for _ in range(3)]
    seqs = await asyncio.gather(
        *(inboxes[n % 3].put(CONVERSATION, f"id{n}", str(n)) for n in range(30))
    )
    assert len({*seqs}) == 30 and None not in seqs
    order = []
    while (entry := await inboxes[0].first(CONVERSATION)) is not None:
        order.append(entry.seq)
        await inboxes[1].remove(entry)
    assert order == sorted(seqs)  # type: ignore[type-var]


async def test_sqlite_entries_survive_a_restart(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "state.db")
    inbox = backend_of(storage).inbox()
    await inbox.put(CONVERSATION, "x", "acknowledged, then the process died")
    await inbox.close()
    await storage.close()
    storage = SqliteStorage(tmp_path / "state.db")
    inbox = backend_of(storage).inbox()
    try:
        entry = await inbox.first(CONVERSATION)
        assert entry is not None and entry.body == "acknowledged, then the process died"
    finally:
        await inbox.close()
        await storage.close()
