"""The PostgreSQL and Redis servers that shared-storage tests talk to, and cleaning up after them.

Tests use a fresh namespace (table prefix, key prefix) each, so parallel runs never collide, and
drop it afterwards. Where a server is not reachable the tests skip, saying why; with
BOTLOOM_TEST_REQUIRE_SERVICES=1 (CI) they fail instead, so a stopped server cannot hide a bug.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
import redis.asyncio as aioredis

POSTGRES_URL = os.environ.get(
    "BOTLOOM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("BOTLOOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRED = os.environ.get("BOTLOOM_TEST_REQUIRE_SERVICES", "") == "1"

_reachable: dict[str, str | None] = {}  # url -> None when reachable, else why not


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_namespace() -> str:
    return f"bltest_{uuid.uuid4().hex[:12]}"


async def _probe_postgres() -> str | None:
    try:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    await conn.close()
    return None


async def _probe_redis() -> str | None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    finally:
        await client.aclose()
    return None


async def require(kind: str) -> str:
    """The URL of the `kind` ("postgresql" or "redis") server; skips (or, in CI, fails) the test
    when it is not reachable."""
    url = POSTGRES_URL if kind == "postgresql" else REDIS_URL
    if url not in _reachable:
        _reachable[url] = await (_probe_postgres() if kind == "postgresql" else _probe_redis())
    why = _reachable[url]
    if why is not None:
        variable = "BOTLOOM_TEST_POSTGRES_URL" if kind == "postgresql" else "BOTLOOM_TEST_REDIS_URL"
        message = f"no {kind} server at {url} ({why}); start one or set {variable}"
        if REQUIRED:
            pytest.fail(message + " [BOTLOOM_TEST_REQUIRE_SERVICES=1]")
        pytest.skip(message)
    return url


async def drop_namespace(kind: str, namespace: str) -> None:
    """Remove every table, sequence or key the namespace's storage made."""
    if kind == "postgresql":
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            pattern = namespace.replace("_", r"\_") + r"\_%"
            for relkind, sql_kind in (("r", "TABLE"), ("S", "SEQUENCE")):
                names = await conn.fetch(
                    f"SELECT relname FROM pg_class WHERE relkind = '{relkind}' AND relname LIKE $1",
                    pattern,
                )
                for row in names:
                    await conn.execute(f"DROP {sql_kind} IF EXISTS {row['relname']} CASCADE")
        finally:
            await conn.close()
    else:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=500)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@asynccontextmanager
async def namespace_on(kind: str) -> AsyncIterator[tuple[str, str]]:
    """(url, a fresh namespace) on the `kind` server, dropped afterwards."""
    url = await require(kind)
    namespace = unique_namespace()
    try:
        yield url, namespace
    finally:
        await drop_namespace(kind, namespace)
