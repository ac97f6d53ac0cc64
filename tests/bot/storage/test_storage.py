"""The storage contract, run against every storage; then SQLite's own promises."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from botbuilder.core import ConversationState, Storage, StoreItem, TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.dialogs import (
    ComponentDialog,
    DialogTurnResult,
    WaterfallDialog,
    WaterfallStepContext,
)
from botbuilder.dialogs.prompts import PromptOptions, TextPrompt
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, ConversationAccount
from botbuilder.testing import DialogTestClient

from bot.storage import StorageConflictError
from bot.storage.postgres import PostgresStorage
from bot.storage.postgres.storage import migrations
from bot.storage.redis import RedisStorage
from bot.storage.sqlite import SqliteStorage
from bot.storage.values import ABSENT
from tests.services import namespace_on

KEY = "emulator/conversations/a:b c/é"  # botbuilder keys have slashes; ours may have anything
OTHER = "emulator/users/u1"

# A place where state lives: it yields a function that opens one more storage on the same data,
# as another process (or replica) would; all are closed at the end. PostgreSQL and Redis get a
# fresh namespace each time, and skip (saying why) where no server is reachable.
Opener = Callable[[], Storage]
Place = Callable[[Path], AbstractAsyncContextManager[Opener]]


@asynccontextmanager
async def on_sqlite(tmp_path: Path) -> AsyncIterator[Opener]:
    opened: list[SqliteStorage] = []

    def open_one() -> Storage:
        opened.append(SqliteStorage(tmp_path / "state.db"))
        return opened[-1]

    try:
        yield open_one
    finally:
        for store in opened:
            await store.close()


@asynccontextmanager
async def on_server(kind: str, tmp_path: Path) -> AsyncIterator[Opener]:
    opened: list[PostgresStorage | RedisStorage] = []
    async with namespace_on(kind) as (url, namespace):
        cls = PostgresStorage if kind == "postgresql" else RedisStorage

        def open_one() -> Storage:
            opened.append(cls(url, namespace=namespace))
            return opened[-1]

        try:
            yield open_one
        finally:
            for store in opened:
                await store.close()


STORAGES: dict[str, Place] = {
    "sqlite": on_sqlite,
    "postgresql": partial(on_server, "postgresql"),
    "redis": partial(on_server, "redis"),
}


async def close(storage: Storage) -> None:
    closer = getattr(storage, "close", None)
    if closer is not None:
        await closer()


@pytest.fixture(params=sorted(STORAGES))
async def place(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    async with STORAGES[request.param](tmp_path) as open_one:
        yield open_one


@pytest.fixture
def storage(place: Opener) -> Storage:
    return place()


class Note(StoreItem):
    """A StoreItem subclass, as a bot would define one."""


def without_etag(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "e_tag"}


# --- the contract -------------------------------------------------------------------------------


async def test_read_returns_only_stored_keys(storage: Storage) -> None:
    await storage.write({KEY: {"n": 1}})
    assert set(await storage.read([KEY, "missing"])) == {KEY}
    assert await storage.read(["missing"]) == {}
    assert await storage.read([]) == {}


async def test_dict_round_trip_with_etag(storage: Storage) -> None:
    value = {"text": "héllo", "nested": {"list": [1, 2.5, None, True]}, "empty": {}}
    await storage.write({KEY: dict(value), OTHER: {"n": 2}})
    items = await storage.read([KEY, OTHER])
    assert without_etag(items[KEY]) == value
    assert without_etag(items[OTHER]) == {"n": 2}
    assert isinstance(items[KEY]["e_tag"], str) and items[KEY]["e_tag"]
    assert items[KEY]["e_tag"] != items[OTHER]["e_tag"]


@pytest.mark.parametrize("cls", [StoreItem, Note])
async def test_store_item_round_trip(storage: Storage, cls: type[StoreItem]) -> None:
    written = cls(name="ada", count=3, tags=["x"])
    await storage.write({KEY: written})
    item = (await storage.read([KEY]))[KEY]
    assert type(item) is cls
    assert (item.name, item.count, item.tags) == ("ada", 3, ["x"])
    assert isinstance(item.e_tag, str) and item.e_tag
    assert written.e_tag == item.e_tag


async def test_update_replaces_value_and_etag(storage: Storage) -> None:
    await storage.write({KEY: {"n": 1, "gone": True}})
    first = (await storage.read([KEY]))[KEY]
    await storage.write({KEY: {"n": 2}})
    second = (await storage.read([KEY]))[KEY]
    assert without_etag(second) == {"n": 2}
    assert second["e_tag"] != first["e_tag"]


async def test_write_with_current_etag_succeeds_and_updates_it(storage: Storage) -> None:
    await storage.write({KEY: {"n": 1}})
    item = (await storage.read([KEY]))[KEY]
    item["n"] = 2
    await storage.write({KEY: item})
    stored = (await storage.read([KEY]))[KEY]
    assert stored["n"] == 2
    assert item["e_tag"] == stored["e_tag"]  # so the caller can write it again
    item["n"] = 3
    await storage.write({KEY: item})
    assert (await storage.read([KEY]))[KEY]["n"] == 3


async def test_delete(storage: Storage) -> None:
    await storage.write({KEY: {"n": 1}, OTHER: {"n": 2}})
    await storage.delete([KEY, "missing"])
    await storage.delete([])
    assert set(await storage.read([KEY, OTHER])) == {OTHER}


async def test_stale_etag_raises_and_keeps_the_stored_value(storage: Storage) -> None:
    await storage.write({KEY: {"n": 1}})
    stale = (await storage.read([KEY]))[KEY]["e_tag"]
    await storage.write({KEY: {"n": 2, "e_tag": stale}})
    with pytest.raises(StorageConflictError, match="etag conflict") as raised:
        await storage.write({KEY: {"n": 3, "e_tag": stale}})
    assert raised.value.key == KEY
    assert (await storage.read([KEY]))[KEY]["n"] == 2


async def test_stale_etag_on_store_item_raises(storage: Storage) -> None:
    await storage.write({KEY: Note(n=1)})
    item = (await storage.read([KEY]))[KEY]
    await storage.write({KEY: Note(n=2)})
    with pytest.raises(StorageConflictError):
        await storage.write({KEY: item})


async def test_etag_of_deleted_item_raises(storage: Storage) -> None:
    await storage.write({KEY: {"n": 1}})
    item = (await storage.read([KEY]))[KEY]
    await storage.delete([KEY])
    with pytest.raises(StorageConflictError, match="no longer exists"):
        await storage.write({KEY: item})
    assert await storage.read([KEY]) == {}


@pytest.mark.parametrize("etag", ["*", None])
async def test_star_or_no_etag_overwrites(storage: Storage, etag: str | None) -> None:
    await storage.write({KEY: {"n": 1}})
    value: dict[str, Any] = {"n": 2} if etag is None else {"n": 2, "e_tag": etag}
    await storage.write({KEY: value})
    assert (await storage.read([KEY]))[KEY]["n"] == 2


async def test_concurrent_writers_from_one_read_exactly_one_wins(storage: Storage) -> None:
    await storage.write({KEY: {"writer": None}})
    etag = (await storage.read([KEY]))[KEY]["e_tag"]
    writes = [storage.write({KEY: {"writer": i, "e_tag": etag}}) for i in range(8)]
    results = await asyncio.gather(*writes, return_exceptions=True)
    winners = [i for i, result in enumerate(results) if result is None]
    assert len(winners) == 1
    assert all(isinstance(r, StorageConflictError) for r in results if r is not None)
    assert (await storage.read([KEY]))[KEY]["writer"] == winners[0]


async def test_creating_writers_with_absent_etag_exactly_one_wins(storage: Storage) -> None:
    """e_tag ABSENT creates an item only where there is none: of writers that all found nothing,
    one creates it and the others conflict, so nobody overwrites what another created."""
    writes = [storage.write({KEY: {"writer": i, "e_tag": ABSENT}}) for i in range(8)]
    results = await asyncio.gather(*writes, return_exceptions=True)
    winners = [i for i, result in enumerate(results) if result is None]
    assert len(winners) == 1
    assert all(isinstance(r, StorageConflictError | KeyError) for r in results if r is not None)
    assert (await storage.read([KEY]))[KEY]["writer"] == winners[0]
    with pytest.raises((StorageConflictError, KeyError)):
        await storage.write({KEY: {"writer": "late", "e_tag": ABSENT}})


# --- SQLite only --------------------------------------------------------------------------------


async def test_data_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "state.db"  # parent folders are created
    first = SqliteStorage(path)
    await first.write({KEY: {"n": 1}, OTHER: Note(n=2)})
    before = await first.read([KEY])
    await first.close()

    second = SqliteStorage(path)
    try:
        after = await second.read([KEY, OTHER])
        assert after[KEY] == before[KEY]  # etag included
        assert after[OTHER].n == 2
    finally:
        await second.close()


async def test_file_is_in_wal_mode_and_close_releases_it(tmp_path: Path) -> None:
    store = SqliteStorage(tmp_path / "state.db")
    await store.write({KEY: {"n": 1}})
    assert (tmp_path / "state.db-wal").exists()
    await store.close()
    assert not (tmp_path / "state.db-wal").exists()  # the last connection closed checkpoints it
    probe = sqlite3.connect(tmp_path / "state.db")
    try:
        assert probe.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        probe.close()


async def test_many_storages_opening_a_new_file_at_once_all_start(tmp_path: Path) -> None:
    # Switching a new file to WAL ignores SQLite's busy timeout: without a retry, some of several
    # replicas that open a new file together fail with "database is locked" (seen 19 in 200 runs).
    for attempt in range(20):
        stores = [SqliteStorage(tmp_path / f"state{attempt}.db") for _ in range(8)]
        try:
            await asyncio.gather(
                *(store.write({f"{KEY}-{n}": {"n": n}}) for n, store in enumerate(stores))
            )
            stored = await stores[0].read([f"{KEY}-{n}" for n in range(8)])
            assert sorted(item["n"] for item in stored.values()) == list(range(8))
        finally:
            await asyncio.gather(*(store.close() for store in stores))


@pytest.fixture
async def two_processes(tmp_path: Path) -> AsyncIterator[tuple[SqliteStorage, SqliteStorage]]:
    """Two storages on one file: separate connections and threads, as two processes have."""
    a, b = SqliteStorage(tmp_path / "state.db"), SqliteStorage(tmp_path / "state.db")
    yield a, b
    await a.close()
    await b.close()


async def test_two_instances_see_each_others_writes_and_conflicts(place: Opener) -> None:
    a, b = place(), place()  # two processes (or replicas) on the same data
    await a.write({KEY: {"n": 1}})
    seen_by_a = (await a.read([KEY]))[KEY]
    seen_by_b = (await b.read([KEY]))[KEY]
    assert seen_by_b == seen_by_a

    seen_by_b["n"] = 2
    await b.write({KEY: seen_by_b})
    seen_by_a["n"] = 3
    with pytest.raises(StorageConflictError):
        await a.write({KEY: seen_by_a})
    assert (await a.read([KEY]))[KEY]["n"] == 2
    await b.delete([KEY])
    assert await a.read([KEY]) == {}


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another process mid-transaction: storages must wait for it, not fail or skip it."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def test_compare_and_swap_is_atomic_across_connections(
    two_processes: tuple[SqliteStorage, SqliteStorage], tmp_path: Path
) -> None:
    a, b = two_processes
    await a.write({KEY: {"writer": None}})
    etag = (await b.read([KEY]))[KEY]["e_tag"]
    other = hold_write_lock(tmp_path / "state.db")
    # Both writers get to the database while it is locked; a check made outside the write
    # transaction would pass for both, and both would then write.
    racing = asyncio.gather(
        a.write({KEY: {"writer": "a", "e_tag": etag}}),
        b.write({KEY: {"writer": "b", "e_tag": etag}}),
        return_exceptions=True,
    )
    await asyncio.sleep(0.3)
    other.commit()
    other.close()
    results = await racing
    assert sorted(type(r).__name__ for r in results) == ["NoneType", "StorageConflictError"]
    winner = "a" if results[0] is None else "b"
    assert (await a.read([KEY]))[KEY]["writer"] == winner


async def test_waiting_for_a_lock_does_not_block_the_event_loop(tmp_path: Path) -> None:
    store = SqliteStorage(tmp_path / "state.db")
    try:
        await store.write({KEY: {"n": 1}})
        other = hold_write_lock(tmp_path / "state.db")
        write = asyncio.ensure_future(store.write({KEY: {"n": 2}}))
        ticks = 0
        for _ in range(10):  # the lock is released from this loop: a blocked loop never gets here
            await asyncio.sleep(0.02)
            ticks += 1
        assert not write.done()
        other.commit()
        other.close()
        await asyncio.wait_for(write, timeout=5)
        assert ticks == 10
        assert (await store.read([KEY]))[KEY]["n"] == 2
    finally:
        await store.close()


async def test_a_conflict_in_a_batch_writes_nothing(storage: Storage) -> None:
    await storage.write({KEY: {"n": 1}})
    await storage.write({KEY: {"n": 2}})
    with pytest.raises(StorageConflictError):
        await storage.write({OTHER: {"n": 1}, KEY: {"n": 3, "e_tag": "stale"}})
    assert set(await storage.read([KEY, OTHER])) == {KEY}


async def test_closed_storage_refuses_work(tmp_path: Path) -> None:
    store = SqliteStorage(tmp_path / "state.db")
    await store.write({KEY: {"n": 1}})
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await store.read([KEY])


async def test_replicas_incrementing_one_counter_lose_no_update(place: Opener) -> None:
    """Read-modify-write with etags from three instances at once: conflicts retry, none is lost."""
    replicas = [place() for _ in range(3)]
    await replicas[0].write({KEY: {"count": 0}})
    conflicts = 0

    async def increment(store: Storage) -> None:
        nonlocal conflicts
        while True:
            item = (await store.read([KEY]))[KEY]
            item["count"] += 1
            await asyncio.sleep(0)  # let the others read the same version
            try:
                await store.write({KEY: item})
                return
            except StorageConflictError:
                conflicts += 1

    await asyncio.gather(*(increment(store) for store in replicas for _ in range(8)))
    assert (await replicas[1].read([KEY]))[KEY]["count"] == 24
    assert conflicts > 0  # the writers did race


async def test_a_caller_cancelled_mid_operation_is_cancelled(storage: Storage) -> None:
    """A turn cancelled (timed out, drained) inside a storage call must end. redis-py with a
    socket timeout swallowed such cancellations on Python 3.11 (asyncio.wait_for, gh-86296)."""
    await storage.write({KEY: {"n": 0}})

    async def busy() -> None:
        while True:
            item = (await storage.read([KEY]))[KEY]
            await storage.write({KEY: item})

    for attempt in range(150):
        task = asyncio.create_task(busy())
        await asyncio.sleep(0.0005 * (attempt % 7))
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        assert done and task.cancelled(), f"attempt {attempt}: the cancellation was swallowed"
    assert set(await storage.read([KEY])) == {KEY}  # and the storage still works


# --- PostgreSQL only ----------------------------------------------------------------------------


async def test_replicas_starting_together_create_the_schema_once() -> None:
    async with namespace_on("postgresql") as (url, namespace):
        replicas = [PostgresStorage(url, namespace=namespace) for _ in range(4)]
        try:
            await asyncio.gather(*(store.open() for store in replicas))  # CREATE TABLE races
            await replicas[0].write({KEY: {"n": 1}})
            assert (await replicas[3].read([KEY]))[KEY]["n"] == 1
            async with replicas[0].connection() as conn:
                versions = await conn.fetch(f"SELECT version FROM {namespace}_schema")
        finally:
            for store in replicas:
                await store.close()
    assert sorted(row["version"] for row in versions) == list(range(1, len(migrations("x")) + 1))


async def test_an_older_schema_is_migrated_on_start() -> None:
    async with namespace_on("postgresql") as (url, namespace):
        conn = await asyncpg.connect(url)
        try:  # what the first release created
            await conn.execute(f"CREATE TABLE {namespace}_schema (version integer NOT NULL)")
            for statement in migrations(namespace)[0]:
                await conn.execute(statement)
            await conn.execute(f"INSERT INTO {namespace}_schema VALUES (1)")
            await conn.execute(
                f"INSERT INTO {namespace}_items (key, etag, value) VALUES ($1, 'e1', $2)",
                KEY,
                '{"n": 1}',
            )
            store = PostgresStorage(url, namespace=namespace)
            try:
                assert (await store.read([KEY]))[KEY] == {"n": 1, "e_tag": "e1"}  # data kept
            finally:
                await store.close()
            version = await conn.fetchval(f"SELECT max(version) FROM {namespace}_schema")
            waiters = await conn.fetchval(f"SELECT to_regclass('{namespace}_waiters')::text")
        finally:
            await conn.close()
    assert (version, waiters) == (len(migrations("x")), f"{namespace}_waiters")


# --- BotState over every storage ----------------------------------------------------------------


def turn(conversation_id: str = "abc") -> TurnContext:
    activity = Activity(
        type=ActivityTypes.message,
        channel_id="emulator",
        conversation=ConversationAccount(id=conversation_id),
        from_property=ChannelAccount(id="u1"),
        recipient=ChannelAccount(id="bot"),
        text="hi",
    )
    return TurnContext(TestAdapter(), activity)


async def test_conversation_state_survives_restart(tmp_path: Path) -> None:
    first = SqliteStorage(tmp_path / "state.db")
    state = ConversationState(first)
    context = turn()
    await state.load(context)
    await state.create_property("history").set(context, [{"role": "user", "content": "hi"}])
    await state.save_changes(context)
    await first.close()

    second = SqliteStorage(tmp_path / "state.db")
    try:
        state = ConversationState(second)
        context = turn()
        await state.load(context)
        history = await state.create_property("history").get(context, list)
        assert history == [{"role": "user", "content": "hi"}]
        assert set(await second.read(["emulator/conversations/abc"])) == {
            "emulator/conversations/abc"
        }
    finally:
        await second.close()


async def test_conversation_state_concurrent_turns_conflict(storage: Storage) -> None:
    state = ConversationState(storage)
    counter = state.create_property("count")
    setup = turn()
    await counter.set(setup, 0)
    await state.save_changes(setup)

    first, second = turn(), turn()  # two turns of one conversation, both loaded count=0
    for context in (first, second):
        await state.load(context)
        await counter.set(context, await counter.get(context) + 1)
    await state.save_changes(first)
    with pytest.raises(StorageConflictError):
        await state.save_changes(second)  # MemoryStorage would silently lose first's write


async def test_conversation_state_saves_twice_in_one_turn(tmp_path: Path) -> None:
    store = SqliteStorage(tmp_path / "state.db")
    try:
        state = ConversationState(store)
        counter = state.create_property("count")
        await counter.set(turn(), 0)  # a different context: nothing saved
        context = turn()
        await state.load(context)
        for n in (1, 2, 3):
            await counter.set(context, n)
            await state.save_changes(context)
        check = turn()
        await state.load(check)
        assert await counter.get(check) == 3
    finally:
        await store.close()


class GreetDialog(ComponentDialog):
    """Asks a name on one turn, greets on the next: its place is kept in DialogState."""

    def __init__(self) -> None:
        super().__init__("greet")
        self.add_dialog(TextPrompt("name"))
        self.add_dialog(WaterfallDialog("steps", [self._ask, self._greet]))
        self.initial_dialog_id = "steps"

    async def _ask(self, step: WaterfallStepContext) -> DialogTurnResult:
        prompt = Activity(type=ActivityTypes.message, text="Your name?")
        return await step.prompt("name", PromptOptions(prompt=prompt))

    async def _greet(self, step: WaterfallStepContext) -> DialogTurnResult:
        await step.context.send_activity(f"Hello {step.result}")
        return await step.end_dialog()


async def test_dialog_resumes_after_restart(place: Opener) -> None:
    """DialogState (dialog stack, prompt options holding an Activity) round-trips the store."""
    first = place()
    client = DialogTestClient("test", GreetDialog(), conversation_state=ConversationState(first))
    assert (await client.send_activity("hi")).text == "Your name?"
    await close(first)

    client = DialogTestClient("test", GreetDialog(), conversation_state=ConversationState(place()))
    assert (await client.send_activity("Ada")).text == "Hello Ada"
