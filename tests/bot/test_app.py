"""The HTTP endpoint end to end: a real server, the fake model, a fake connector on loopback."""

from __future__ import annotations

import asyncio
import threading

from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from bot.turns.activity_handler import WELCOME_TEXT
from dialogs.main_dialog import HELP_TEXT, RESET_TEXT
from models.deferred import DeferredChatModel
from models.fake import FakeChatModel
from tests.activities import conversation_update, message
from tests.connector import FakeConnector


async def test_welcome_on_conversation_update_but_not_for_the_bot(
    bot_client: TestClient, connector: FakeConnector
) -> None:
    response = await bot_client.post(
        "/api/messages", json=conversation_update(["user-1", "bot-1"], service_url=connector.url)
    )
    assert response.status == 202
    replies = await connector.wait_for_messages(1)
    assert [r["text"] for r in replies] == [WELCOME_TEXT]


async def test_message_gets_typing_then_model_reply(
    bot_client: TestClient, connector: FakeConnector, fake_model: FakeChatModel
) -> None:
    response = await bot_client.post(
        "/api/messages", json=message("hello", service_url=connector.url)
    )
    assert response.status == 202
    replies = await connector.wait_for_messages(1)
    assert replies[0]["text"] == "fake: hello"
    types = [a["type"] for a in connector.activities]
    assert types[0] == "typing"
    assert "typing" not in types[types.index("message") :], "no typing after the reply"
    assert connector.paths[-1].startswith("/v3/conversations/conv-1/activities/")
    assert fake_model.prompts[0][0].role == "system"
    assert fake_model.prompts[0][-1].content == "hello"


async def test_history_is_sent_to_the_model_and_reset_forgets_it(
    bot_client: TestClient, connector: FakeConnector, fake_model: FakeChatModel
) -> None:
    for text in ("first", "second"):
        await bot_client.post("/api/messages", json=message(text, service_url=connector.url))
    await connector.wait_for_messages(2)
    assert [m.content for m in fake_model.prompts[1][1:]] == ["first", "fake: first", "second"]

    await bot_client.post("/api/messages", json=message("/reset", service_url=connector.url))
    assert (await connector.wait_for_messages(3))[-1]["text"] == RESET_TEXT
    await bot_client.post("/api/messages", json=message("third", service_url=connector.url))
    await connector.wait_for_messages(4)
    assert [m.content for m in fake_model.prompts[-1][1:]] == ["third"]


async def test_help_lists_the_commands(bot_client: TestClient, connector: FakeConnector) -> None:
    await bot_client.post("/api/messages", json=message("/help", service_url=connector.url))
    text = (await connector.wait_for_messages(1))[-1]["text"]
    assert text == HELP_TEXT
    for command in ("/help", "/reset", "/feedback", "cancel"):
        assert command in text


async def test_feedback_flow_over_http(bot_client: TestClient, connector: FakeConnector) -> None:
    said = []
    for count, text in enumerate(("/feedback", "Great", "Lovely answers", "yes"), start=1):
        await bot_client.post("/api/messages", json=message(text, service_url=connector.url))
        said.append((await connector.wait_for_messages(count))[-1]["text"])
    assert said[0].startswith("How were my answers?")
    assert said[1] == "Anything you'd like to add?"
    assert "Rating: Great. Comment: Lovely answers" in said[2]
    assert said[3] == "Thank you! Your feedback is saved."


async def test_teams_mention_is_stripped(
    bot_client: TestClient, connector: FakeConnector, fake_model: FakeChatModel
) -> None:
    activity = message(
        "<at>botloom</at> what is up?",
        service_url=connector.url,
        channel="msteams",
        entities=[
            {
                "type": "mention",
                "text": "<at>botloom</at>",
                "mentioned": {"id": "bot-1", "name": "botloom"},
            }
        ],
    )
    await bot_client.post("/api/messages", json=activity)
    assert (await connector.wait_for_messages(1))[0]["text"] == "fake: what is up?"


async def test_unhandled_activity_types_are_ignored(
    bot_client: TestClient, connector: FakeConnector
) -> None:
    for kind in (
        "messageReaction",
        "event",
        "installationUpdate",
        "endOfConversation",
        "somethingNew",
    ):
        activity = message(None, service_url=connector.url)
        activity["type"] = kind
        response = await bot_client.post("/api/messages", json=activity)
        assert response.status == 202, kind
    await bot_client.post("/api/messages", json=message("still there?", service_url=connector.url))
    assert [m["text"] for m in await connector.wait_for_messages(1)] == ["fake: still there?"]


async def test_turn_error_apologises_and_sends_trace_on_emulator(
    settings: Settings, connector: FakeConnector
) -> None:
    class BrokenModel(FakeChatModel):
        def count_tokens(self, messages):  # a bug, not a ModelError
            raise RuntimeError("boom")

    client = TestClient(TestServer(create_app(settings, model=BrokenModel()), host="127.0.0.1"))
    await client.start_server()
    try:
        await client.post("/api/messages", json=message("hi", service_url=connector.url))
        await client.post("/api/messages", json=message("/help", service_url=connector.url))
        await connector.wait_for_messages(2)
    finally:
        await client.close()
    kinds = [
        (a["type"], a.get("text", a.get("label")))
        for a in connector.activities
        if a["type"] != "typing"
    ]
    assert kinds[0] == ("message", "Sorry, something went wrong on my side. Please try again.")
    assert (
        kinds[1][0] == "trace"
        and "RuntimeError: boom"
        in connector.activities[
            next(i for i, a in enumerate(connector.activities) if a["type"] == "trace")
        ]["value"]
    )
    assert kinds[2] == ("message", HELP_TEXT)


async def test_health_and_readiness(bot_client: TestClient) -> None:
    assert (await bot_client.get("/healthz")).status == 200
    ready = await bot_client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["model"] == "fake"


async def test_readyz_is_503_until_the_model_has_loaded(settings: Settings) -> None:
    release = threading.Event()

    def slow_loader() -> FakeChatModel:
        release.wait(10)
        return FakeChatModel()

    model = DeferredChatModel(slow_loader, name="slow")
    client = TestClient(TestServer(create_app(settings, model=model), host="127.0.0.1"))
    await client.start_server()
    try:
        assert (await client.get("/readyz")).status == 503
        assert (await client.get("/healthz")).status == 200
        release.set()
        await model.wait_ready()
        await asyncio.sleep(0)
        assert (await client.get("/readyz")).status == 200
    finally:
        release.set()
        await client.close()


async def test_a_message_answered_before_a_restart_is_not_answered_again(
    settings: Settings, connector: FakeConnector, fake_model: FakeChatModel
) -> None:
    # A channel's late retry, or a turn run again because its replica died after saving it:
    # the conversation's state remembers the ids of the turns it saved.
    first = message("once", service_url=connector.url)
    for attempt in range(2):  # the second time on a restarted bot (its memory of ids is gone)
        client = TestClient(TestServer(create_app(settings, model=fake_model), host="127.0.0.1"))
        await client.start_server()
        try:
            assert (await client.post("/api/messages", json=first)).status == 202
            if attempt == 0:
                await connector.wait_for_messages(1)
            else:
                after = message("then", service_url=connector.url)
                await client.post("/api/messages", json=after)
                await connector.wait_for_messages(2)
        finally:
            await client.close()
    assert [m["text"] for m in connector.messages()] == ["fake: once", "fake: then"]
    assert [m.content for m in fake_model.prompts[-1][1:]] == ["once", "fake: once", "then"]


async def test_an_undeliverable_emulator_trace_does_not_fail_the_turn(
    bot_client: TestClient, connector: FakeConnector
) -> None:
    connector.refuse_when(lambda a: a["type"] == "trace", status=503, code="Busy", message="busy")
    await bot_client.post("/api/messages", json=message("hi", service_url=connector.url))
    await bot_client.post("/api/messages", json=message("again", service_url=connector.url))
    replies = await connector.wait_for_messages(2)
    assert [r["text"] for r in replies] == ["fake: hi", "fake: again"], "no apology"
    await connector.wait_for(lambda _: len(connector.refused) >= 2)  # each after its reply
    await asyncio.sleep(0.3)  # a retry would come within this
    assert [a["type"] for _, a in connector.refused] == ["trace", "trace"], "sent once each"
