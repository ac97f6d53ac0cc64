"""GET /metrics on the bot: Prometheus' text format, counters that move as turns run."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from bot.observability import Telemetry
from bot.settings import Settings
from models.fake import FakeChatModel
from tests.activities import message
from tests.bot.observability.conftest import start_bot
from tests.bot.observability.test_model_server_trace import samples
from tests.connector import FakeConnector


async def scrape(client: TestClient, **headers: str) -> dict[str, float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200
    return samples(await response.text())


async def test_counters_move_as_turns_run(settings: Settings, connector: FakeConnector) -> None:
    bot = await start_bot(settings, Telemetry(), FakeChatModel())
    try:
        before = await scrape(bot)
        assert before.get('botloom_turns_total{channel="emulator",outcome="ok"}', 0) == 0
        assert before["botloom_inbox_depth{}"] == 0
        connector.refuse_when(
            lambda a: a["type"] == "message", 429, headers={"Retry-After": "0"}, times=1
        )
        for n in range(2):
            await bot.post(
                "/api/messages",
                json=message(f"hello {n}", service_url=connector.url, conversation=f"c{n}"),
            )
        await connector.wait_for_messages(2)
        after = await scrape(bot)
        for _ in range(100):  # a turn is counted once it has ended, just after its reply
            if after.get('botloom_turns_total{channel="emulator",outcome="ok"}') == 2:
                break
            after = await scrape(bot)
        assert after['botloom_turns_total{channel="emulator",outcome="ok"}'] == 2
        assert after['botloom_turn_duration_seconds_count{channel="emulator"}'] == 2
        assert after['botloom_time_to_first_token_seconds_count{model="fake"}'] == 2
        assert after['botloom_input_tokens_total{model="fake",tenant=""}'] > 0
        assert after['botloom_output_tokens_total{model="fake",tenant=""}'] > 0
        assert after['botloom_connector_requests_total{status="429"}'] == 1
        assert after['botloom_connector_requests_total{status="200"}'] >= 2
        assert after["botloom_connector_retries_total{}"] == 1
        assert after["botloom_lock_wait_seconds_count{}"] == 2
        assert after["botloom_inbox_wait_seconds_count{}"] == 2
        assert after["botloom_citations_total{}"] == 0
    finally:
        await bot.close()


async def test_metrics_token(settings: Settings) -> None:
    bot = await start_bot(settings, Telemetry(metrics_token="s3cret"), FakeChatModel())
    try:
        assert (await bot.get("/metrics")).status == 401
        wrong = await bot.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        assert "botloom_inbox_depth{}" in await scrape(bot, Authorization="Bearer s3cret")
    finally:
        await bot.close()


async def test_apps_in_one_process_keep_their_own_counters(
    settings: Settings, connector: FakeConnector
) -> None:
    first = await start_bot(settings, Telemetry(), FakeChatModel())
    second = await start_bot(
        Settings(storage="memory://", typing_interval_s=30), Telemetry(), FakeChatModel()
    )
    try:
        await first.post("/api/messages", json=message("hi", service_url=connector.url))
        await connector.wait_for_messages(1)
        assert (await scrape(second)).get(
            'botloom_time_to_first_token_seconds_count{model="fake"}', 0
        ) == 0
    finally:
        await first.close()
        await second.close()


async def test_feedback_reactions_are_counted(settings: Settings, connector: FakeConnector) -> None:
    from tests.bot.test_teams_replies import feedback_invoke

    bot = await start_bot(settings, Telemetry(), FakeChatModel())
    try:
        for reaction in ("like", "dislike", "like"):
            response = await bot.post(
                "/api/messages", json=feedback_invoke(connector.url, "r-1", reaction, "")
            )
            assert response.status == 200
        scraped = await scrape(bot)
        assert scraped['botloom_feedback_reactions_total{reaction="like"}'] == 2
        assert scraped['botloom_feedback_reactions_total{reaction="dislike"}'] == 1
        assert scraped['botloom_turns_total{channel="msteams",outcome="ok"}'] == 3
    finally:
        await bot.close()
