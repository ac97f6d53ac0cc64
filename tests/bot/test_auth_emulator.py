"""With an app id, an Emulator token must be addressed to this bot (`aud`, and `appid` or `azp`):
the bot's own outbound token is not. And it names no service URL (a channel's token does, and
botbuilder checks it), so the bot would attach its own bearer token to whatever serviceUrl the
activity names: such activities must name an allowed service URL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from models.fake import FakeChatModel
from tests.activities import message
from tests.bot.http.test_auth import (
    APP_ID,
    CHANNEL,
    FakeKeyServer,
    OfflineCredentialFactory,
    SigningKey,
    token,
)
from tests.connector import FakeConnector

EMULATOR_ISSUER = "https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/"


def emulator_token(key: SigningKey) -> str:
    now = int(time.time())
    claims = {
        "iss": EMULATOR_ISSUER,
        "aud": APP_ID,
        "appid": APP_ID,
        "ver": "1.0",
        "nbf": now - 10,
        "exp": now + 600,
    }
    return jwt.encode(claims, key.pem, algorithm="RS256", headers={"kid": key.kid})


@pytest.fixture
async def key_server() -> AsyncIterator[FakeKeyServer]:
    server = FakeKeyServer([SigningKey("key-1", endorsements=[CHANNEL, "emulator"])])
    await server._server.start_server()
    yield server
    await server._server.close()


async def secured_bot(tmp_path: Path, key_server: FakeKeyServer, **extra: object) -> TestClient:
    settings = Settings(
        app_id=APP_ID,
        app_password="not-logged",
        storage=f"sqlite:///{tmp_path}/state.db",
        openid_metadata_url=key_server.metadata_url,
        emulator_openid_metadata_url=key_server.metadata_url,
        typing_interval_s=30,
        **extra,  # type: ignore[arg-type]
    )
    app = create_app(
        settings,
        model=FakeChatModel(),
        credentials_factory=OfflineCredentialFactory(APP_ID, "not-logged"),
    )
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def test_emulator_token_to_a_service_url_outside_the_allowlist_is_refused(
    tmp_path: Path, key_server: FakeKeyServer, connector: FakeConnector
) -> None:
    client = await secured_bot(
        tmp_path, key_server, allowed_service_urls=("https://smba.trafficmanager.net",)
    )
    key = key_server.keys[0]
    try:
        activity = message("hello", service_url=connector.url, channel="emulator")
        headers = {"Authorization": f"Bearer {emulator_token(key)}"}
        refused = await client.post("/api/messages", json=activity, headers=headers)
        assert refused.status == 403
        # A channel's token is bound to its service URL, so it is answered there as before.
        teams = message("hello", service_url=connector.url, channel=CHANNEL, conversation="t")
        headers = {"Authorization": f"Bearer {token(key, connector.url)}"}
        assert (await client.post("/api/messages", json=teams, headers=headers)).status == 202
        replies = await connector.wait_for_messages(1, conversation="t")
        assert replies[0]["text"] == "fake: hello"
        assert all(r["conversation"]["id"] == "t" for r in connector.activities)
    finally:
        await client.close()


async def test_emulator_token_to_a_loopback_service_url_is_answered(
    tmp_path: Path, key_server: FakeKeyServer, connector: FakeConnector
) -> None:
    client = await secured_bot(tmp_path, key_server)
    try:
        activity = message("hello", service_url=connector.url, channel="emulator")
        headers = {"Authorization": f"Bearer {emulator_token(key_server.keys[0])}"}
        assert (await client.post("/api/messages", json=activity, headers=headers)).status == 202
        replies = await connector.wait_for_messages(1)
        assert replies[0]["text"] == "fake: hello"
    finally:
        await client.close()


def outbound_shaped_token(key: SigningKey, version: str) -> str:
    """What the bot's own app credentials get from the Bot Framework tenant, and send with every
    reply: audience the Bot Framework API, issued to the bot's app id."""
    now = int(time.time())
    claims: dict[str, object] = {
        "aud": "https://api.botframework.com",
        "ver": version,
        "nbf": now - 10,
        "exp": now + 600,
    }
    if version == "1.0":
        claims.update(iss=EMULATOR_ISSUER, appid=APP_ID)
    else:
        claims.update(
            iss="https://login.microsoftonline.com/d6d49420-f39b-4df7-a1dc-d59a935871db/v2.0",
            azp=APP_ID,
        )
    return jwt.encode(claims, key.pem, algorithm="RS256", headers={"kid": key.kid})


@pytest.mark.parametrize("version", ["1.0", "2.0"])
async def test_the_bots_own_outbound_token_is_refused(
    tmp_path: Path, key_server: FakeKeyServer, connector: FakeConnector, version: str
) -> None:
    client = await secured_bot(tmp_path, key_server)
    key = key_server.keys[0]
    try:
        activity = message("hello", service_url=connector.url, channel="emulator")
        headers = {"Authorization": f"Bearer {outbound_shaped_token(key, version)}"}
        assert (await client.post("/api/messages", json=activity, headers=headers)).status == 401
        # an Emulator token addressed to this bot but issued to another app is refused too
        now = int(time.time())
        foreign = jwt.encode(
            {
                "iss": EMULATOR_ISSUER,
                "aud": APP_ID,
                "appid": "another-app",
                "ver": "1.0",
                "nbf": now - 10,
                "exp": now + 600,
            },
            key.pem,
            algorithm="RS256",
            headers={"kid": key.kid},
        )
        headers = {"Authorization": f"Bearer {foreign}"}
        assert (await client.post("/api/messages", json=activity, headers=headers)).status == 401
    finally:
        await client.close()
    assert connector.activities == []
