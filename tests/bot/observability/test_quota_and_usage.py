"""Token usage per user in the bot's storage, the daily quota's polite notice, `botloom usage`,
and the engine's gauges on a model server with the tiny real engine."""

from __future__ import annotations

import argparse
import asyncio
import io
from datetime import UTC, datetime
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from bot.observability import Telemetry
from bot.observability.turn_middleware import quota_notice
from bot.observability.usage import UsageStore, today
from bot.observability.usage_command import parse_day, run_usage
from bot.settings import Settings
from bot.storage import create_backend
from models.engine import BatchedChatModel
from models.fake import FakeChatModel
from models.serving.model_server import create_model_server
from tests.activities import message
from tests.bot.observability.conftest import start_bot
from tests.bot.observability.test_model_server_trace import samples
from tests.connector import FakeConnector
from tests.models.serial import load_float64


async def test_past_the_quota_the_user_hears_when_it_resets(
    settings: Settings, connector: FakeConnector
) -> None:
    telemetry = Telemetry(tokens_per_user_per_day=5)
    bot = await start_bot(settings, telemetry, FakeChatModel())
    try:
        await bot.post("/api/messages", json=message("hello there", service_url=connector.url))
        assert (await connector.wait_for_messages(1))[0]["text"] == "fake: hello there"
        await bot.post("/api/messages", json=message("and again", service_url=connector.url))
        notice = (await connector.wait_for_messages(2))[-1]["text"]
        assert notice.startswith("Sorry, you have used today's allowance of 5 tokens")
        assert "resets at 00:00 UTC" in notice
        await bot.post("/api/messages", json=message("/help", service_url=connector.url))
        assert "allowance" not in (await connector.wait_for_messages(3))[-1]["text"]
        other = message("hi", service_url=connector.url, user="user-2", conversation="c2")
        await bot.post("/api/messages", json=other)
        assert (await connector.wait_for_messages(4))[-1]["text"] == "fake: hi"
        metrics = samples(await (await bot.get("/metrics")).text())
        assert metrics["botloom_quota_refusals_total{}"] == 1
    finally:
        await bot.close()

    out = io.StringIO()
    assert await run_usage(settings, argparse.Namespace(since="1d"), out) == 0
    table = out.getvalue().splitlines()
    assert table[1].split() == ["user", "tenant", "replies", "input", "output", "tokens"]
    users = {line.split()[0]: line.split() for line in table[2:]}
    assert users["emulator/users/user-1"][2] == "1"  # one reply; the refused message made none
    assert users["emulator/users/user-2"][2] == "1"
    assert int(users["total"][-1]) == sum(int(users[u][-1]) for u in users if u != "total")


def test_the_notice_names_the_wait_until_midnight_utc() -> None:
    evening = datetime(2026, 12, 7, 21, 30, tzinfo=UTC)
    assert "in about 2 h 30 min" in quota_notice(1000, evening)
    assert "1,000 tokens" in quota_notice(1000, evening)
    late = datetime(2026, 12, 7, 23, 50, tzinfo=UTC)
    assert "in about 10 min" in quota_notice(1000, late)


def test_since_takes_a_date_or_days_back() -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC).date()
    assert parse_day("7d", now).isoformat() == "2026-11-30"
    assert parse_day("2026-12-01", now).isoformat() == "2026-12-01"
    assert parse_day("", now) == now
    for bad in ("2027-01-01", "yesterday", "900d"):
        try:
            parse_day(bad, now)
        except ValueError:
            continue
        raise AssertionError(f"{bad} was accepted")


async def test_engine_gauges_on_the_model_server(tiny_model_dir: Path, tmp_path: Path) -> None:
    engine = BatchedChatModel(*load_float64(tiny_model_dir, tmp_path), name="tiny")
    server = TestClient(TestServer(create_model_server(engine), host="127.0.0.1"))
    await server.start_server()
    try:
        body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
        for _ in range(2):
            assert (await server.post("/v1/chat/completions", json=body)).status == 200
        scraped = samples(await (await server.get("/metrics")).text())
        assert scraped["botloom_engine_requests_total{}"] == 2
        assert scraped["botloom_engine_running_requests{}"] == 0
        assert scraped["botloom_engine_batch_occupancy_ratio{}"] == 0
        assert scraped["botloom_engine_generated_tokens_total{}"] > 0
        # the second, same prompt reuses the first one's KV cache
        assert 0 < scraped["botloom_engine_prefix_cache_hit_ratio{}"] < 1
    finally:
        await server.close()


async def test_usage_adds_up_across_replicas_and_concurrent_replies(tmp_path: Path) -> None:
    """Two stores on one database (two replicas), replies counted concurrently: the totals are
    exact, whoever flushes when."""
    backend = create_backend(f"sqlite:///{tmp_path}/usage.db")
    await backend.open()
    replicas = [UsageStore(backend.storage, flush_s=0.01), UsageStore(backend.storage)]
    try:
        for n in range(40):
            replicas[n % 2].add("teams/users/aad:1", "tenant-a", 10, 2)
            replicas[n % 2].add(f"teams/users/aad:{n % 3 + 2}", "tenant-b", 1, 1)
            if n % 7 == 0:
                await asyncio.sleep(0.02)  # the first replica's flush runs meanwhile
        assert await replicas[1].tokens_today("teams/users/aad:1") >= 20 * 12  # its own, pending
        await asyncio.gather(*(replica.close() for replica in replicas))
        rows = {row.user: row for row in await replicas[0].since(today())}
    finally:
        await backend.storage.close()
    assert (rows["teams/users/aad:1"].input_tokens, rows["teams/users/aad:1"].turns) == (400, 40)
    assert rows["teams/users/aad:1"].tenant == "tenant-a"
    assert sum(rows[f"teams/users/aad:{n}"].turns for n in (2, 3, 4)) == 40
