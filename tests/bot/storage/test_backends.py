"""create_backend: which backend a URL names, and the errors for the others; backend_of: the
backend of a storage made elsewhere; each backend's locks, inbox, rate counts and knowledge index
live beside its state."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from botbuilder.core import MemoryStorage, Storage

from bot.storage import (
    Backend,
    StorageUnavailable,
    StorageURLError,
    backend_of,
    create_backend,
)
from bot.storage.memory import LocalLocks, MemoryBackend, MemoryInbox, MemoryRateCounts
from bot.storage.postgres import (
    PostgresBackend,
    PostgresInbox,
    PostgresLocks,
    PostgresRateCounts,
    PostgresStorage,
)
from bot.storage.postgres.knowledge import PostgresKnowledgeStore
from bot.storage.redis import RedisBackend, RedisInbox, RedisLocks, RedisRateCounts, RedisStorage
from bot.storage.sqlite import (
    SqliteBackend,
    SqliteInbox,
    SqliteLocks,
    SqliteRateCounts,
    SqliteStorage,
)
from bot.storage.sqlite.knowledge import SqliteKnowledgeStore
from tests.services import closed_port

KEY = "emulator/conversations/a:b c/é"


async def close(storage: Storage) -> None:
    closer = getattr(storage, "close", None)
    if closer is not None:
        await closer()


# --- create_backend -----------------------------------------------------------------------------


async def test_create_memory_backend() -> None:
    backend = create_backend("memory://")
    assert isinstance(backend, MemoryBackend)
    assert isinstance(backend.storage, MemoryStorage)


async def test_create_sqlite_backend_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    backend = create_backend("sqlite:///data/bot.db")
    store = backend.storage
    try:
        assert isinstance(backend, SqliteBackend)
        assert isinstance(store, SqliteStorage)
        await store.write({KEY: {"n": 1}})
        assert (tmp_path / "data" / "bot.db").is_file()
    finally:
        await close(store)


async def test_create_sqlite_backend_absolute_path(tmp_path: Path) -> None:
    store = create_backend(f"sqlite:///{tmp_path}/abs.db").storage  # sqlite:////tmp/.../abs.db
    try:
        assert isinstance(store, SqliteStorage)
        assert store.path == tmp_path / "abs.db"
    finally:
        await close(store)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://bot:s3cret@db/botloom", "unsupported storage URL scheme 'mysql'"),
        ("data/botloom.db", "storage URL has no scheme"),
        ("sqlite://data/botloom.db", "malformed sqlite:// storage URL"),
        ("sqlite:///", "malformed sqlite:// storage URL"),
        ("memory://x", "malformed memory:// storage URL"),
        ("", "storage URL has no scheme"),
    ],
)
def test_create_backend_rejects_other_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        create_backend(url)
    assert isinstance(raised.value, StorageURLError)
    assert "sqlite:///relative/path.db" in str(raised.value)  # says what would work
    assert "s3cret" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "cls", "where"),
    [
        (
            "postgresql://bot:s3cret@db.internal:6543/botloom",
            PostgresStorage,
            "db.internal:6543/botloom",
        ),
        ("postgres://bot@db/botloom", PostgresStorage, "db:5432/botloom"),
        ("redis://:s3cret@cache:6380/2", RedisStorage, "cache:6380/2"),
        ("rediss://cache", RedisStorage, "cache:6379"),
    ],
)
async def test_create_shared_backend_connects_only_when_used(
    url: str, cls: type, where: str
) -> None:
    backend = create_backend(url, namespace="bot_a1")
    store = backend.storage
    try:
        assert isinstance(store, cls)
        assert (store.where, store.namespace) == (where, "bot_a1")  # type: ignore[attr-defined]
        assert "s3cret" not in repr(store)
        assert "s3cret" not in repr(backend)
    finally:
        await close(store)


@pytest.mark.parametrize("namespace", ["", "Botloom", "1bot", "bot-loom", "bot;drop", "x" * 41])
def test_create_backend_rejects_unsafe_namespaces(namespace: str) -> None:
    with pytest.raises(ValueError, match="storage namespace"):
        create_backend("postgresql://db/botloom", namespace=namespace)


@pytest.mark.parametrize("scheme", ["postgresql", "redis"])
async def test_unreachable_server_is_a_clear_error_without_the_password(scheme: str) -> None:
    port = closed_port()
    backend = create_backend(f"{scheme}://bot:s3cr%40t@127.0.0.1:{port}/botloom", namespace="bot")
    try:
        with pytest.raises(StorageUnavailable) as raised:
            await backend.open()
        with pytest.raises(StorageUnavailable):
            await backend.storage.read([KEY])
    finally:
        await close(backend.storage)
    message = str(raised.value)
    name = "PostgreSQL" if scheme == "postgresql" else "Redis"
    assert message.startswith(f"cannot reach {name} at 127.0.0.1:{port}/botloom: ")
    assert "s3cr" not in message


# --- what lives beside the state ----------------------------------------------------------------


async def test_sqlite_keeps_everything_in_the_state_file(tmp_path: Path) -> None:
    backend = create_backend(f"sqlite:///{tmp_path}/state.db")
    locks, inbox, counts = backend.locks(lease_s=3.0), backend.inbox(), backend.rate_counts()
    knowledge = backend.knowledge_store()
    try:
        assert isinstance(locks, SqliteLocks)
        assert isinstance(inbox, SqliteInbox) and isinstance(counts, SqliteRateCounts)
        assert isinstance(knowledge, SqliteKnowledgeStore)
        assert knowledge.path == tmp_path / "state.db"
        await inbox.put("c", "a1", "{}")
        assert await counts.hit("u", 1, 60.0) == 1
        async with locks.hold("c", ttl_s=3.0, wait_s=1.0):
            pass
        await backend.storage.write({KEY: {"n": 1}})
        await knowledge.open()
        with closing(sqlite3.connect(tmp_path / "state.db")) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert {"items", "conversation_locks", "inbox", "rate_counts"} <= tables
        assert "knowledge_documents" in tables
    finally:
        for resource in (locks, inbox, counts, knowledge, backend.storage):
            await close(resource)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "types"),
    [
        ("postgresql://db/botloom", (PostgresLocks, PostgresInbox, PostgresRateCounts)),
        ("redis://cache/0", (RedisLocks, RedisInbox, RedisRateCounts)),
        ("memory://", (LocalLocks, MemoryInbox, MemoryRateCounts)),
    ],
)
async def test_each_backend_makes_its_own_locks_inbox_and_counts(
    url: str, types: tuple[type, type, type]
) -> None:
    backend = create_backend(url, namespace="bot_a1")
    try:
        made = (backend.locks(lease_s=3.0), backend.inbox(), backend.rate_counts())
        assert tuple(type(thing) for thing in made) == types
        if isinstance(made[0], PostgresLocks | RedisLocks):
            assert made[0].lease_s == 3.0
            assert made[0]._storage is backend.storage  # on the state's own connections
    finally:
        await close(backend.storage)


async def test_postgres_keeps_the_knowledge_index_in_the_same_database() -> None:
    backend = create_backend("postgresql://bot:s3cret@db:6543/botloom", namespace="bot_a1")
    knowledge = backend.knowledge_store()
    assert isinstance(knowledge, PostgresKnowledgeStore)
    assert knowledge.where == "db:6543/botloom"
    assert knowledge._documents == "bot_a1_knowledge_documents"
    assert "s3cret" not in repr(knowledge)


@pytest.mark.parametrize("url", ["memory://", "redis://:s3cret@cache/0"])
async def test_memory_and_redis_keep_no_knowledge_index(url: str) -> None:
    backend = create_backend(url)
    try:
        with pytest.raises(StorageURLError, match="keeps no knowledge index") as raised:
            backend.knowledge_store()
        assert "s3cret" not in str(raised.value)
    finally:
        await close(backend.storage)


# --- backend_of ---------------------------------------------------------------------------------


class OwnStorage(MemoryStorage):
    """A storage botloom did not make (a test's, or an embedding application's)."""


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda tmp: SqliteStorage(tmp / "state.db"), SqliteBackend),
        (lambda tmp: PostgresStorage("postgresql://db/botloom"), PostgresBackend),
        (lambda tmp: RedisStorage("redis://cache/0"), RedisBackend),
        (lambda tmp: MemoryStorage(), MemoryBackend),
        (lambda tmp: OwnStorage(), MemoryBackend),
    ],
)
async def test_backend_of_a_storage_made_elsewhere(
    tmp_path: Path, make: Callable[[Path], Storage], kind: type[Backend]
) -> None:
    storage = make(tmp_path)
    try:
        backend = backend_of(storage)
        assert type(backend) is kind
        assert backend.storage is storage
    finally:
        await close(storage)
