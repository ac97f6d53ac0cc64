"""Channel tokens, offline: a fake OpenID metadata + key server on loopback signs real JWTs."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from botframework.connector.auth import (
    AppCredentials,
    AuthenticationConstants,
    PasswordServiceClientCredentialFactory,
)
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.app import create_app
from bot.settings import Settings
from models.fake import FakeChatModel
from tests.activities import message
from tests.connector import FakeConnector

APP_ID = "app-1"
CHANNEL = "msteams"
ISSUER = "https://api.botframework.com"


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class SigningKey:
    def __init__(self, kid: str, endorsements: list[str] | None = None) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.endorsements = endorsements if endorsements is not None else [CHANNEL]

    @property
    def pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def jwk(self) -> dict[str, Any]:
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": _b64(numbers.n),
            "e": _b64(numbers.e),
            "endorsements": self.endorsements,
        }


class FakeKeyServer:
    """Serves /.well-known/openid-configuration and /keys; counts fetches; can be slow, or fail
    (503 for the metadata while `failing`)."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys = keys
        self.delay = 0.0
        self.fetches = 0  # key sets served
        self.failing = False
        self.metadata_requests = 0  # answered or failed
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._metadata)
        app.router.add_get("/keys", self._keys)
        self._server = TestServer(app, host="127.0.0.1")

    async def _metadata(self, request: web.Request) -> web.Response:
        self.metadata_requests += 1
        await asyncio.sleep(self.delay)
        if self.failing:
            return web.Response(status=503)
        return web.json_response(
            {"issuer": ISSUER, "jwks_uri": str(self._server.make_url("/keys"))}
        )

    async def _keys(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response({"keys": [k.jwk() for k in self.keys]})

    @property
    def metadata_url(self) -> str:
        return str(self._server.make_url("/.well-known/openid-configuration"))


def token(key: SigningKey, service_url: str, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": APP_ID,
        "serviceurl": service_url,
        "nbf": now - 10,
        "exp": now + 600,
    }
    algorithm = overrides.pop("algorithm", "RS256")
    kid = overrides.pop("kid", key.kid)
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key.pem, algorithm=algorithm, headers={"kid": kid})


class FakeCredentials(AppCredentials):
    """Outbound credentials that need no identity provider: a fixed token."""

    def get_access_token(self, force_refresh: bool = False) -> str:
        return "outbound-test-token"


class OfflineCredentialFactory(PasswordServiceClientCredentialFactory):
    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> AppCredentials:
        return FakeCredentials(app_id=app_id)


@pytest.fixture
def key() -> SigningKey:
    return SigningKey("key-1")


@pytest.fixture
async def key_server(key: SigningKey) -> AsyncIterator[FakeKeyServer]:
    server = FakeKeyServer([key])
    await server._server.start_server()
    yield server
    await server._server.close()


@pytest.fixture
async def secured_bot(tmp_path: Path, key_server: FakeKeyServer) -> AsyncIterator[TestClient]:
    settings = Settings(
        app_id=APP_ID,
        app_password="not-logged",
        storage=f"sqlite:///{tmp_path}/state.db",
        openid_metadata_url=key_server.metadata_url,
        typing_interval_s=30,
    )
    app = create_app(
        settings,
        model=FakeChatModel(),
        credentials_factory=OfflineCredentialFactory(APP_ID, "not-logged"),
    )
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


async def post(client: TestClient, connector: FakeConnector, authorization: str | None) -> int:
    headers = {"Authorization": authorization} if authorization is not None else {}
    activity = message("hello", service_url=connector.url, channel=CHANNEL)
    response = await client.post("/api/messages", json=activity, headers=headers)
    return response.status


async def test_valid_token_gets_a_reply_with_an_outbound_token(
    secured_bot: TestClient, connector: FakeConnector, key: SigningKey
) -> None:
    assert await post(secured_bot, connector, f"Bearer {token(key, connector.url)}") == 202
    replies = await connector.wait_for_messages(1)
    assert replies[0]["text"] == "fake: hello"
    assert set(connector.authorizations) == {"Bearer outbound-test-token"}


def forged_tokens(key: SigningKey, stranger: SigningKey, service_url: str) -> dict[str, str | None]:
    now = int(time.time())
    unendorsed = SigningKey("key-1")  # same kid as the real key, different secret
    return {
        "no header": None,
        "empty bearer": "Bearer ",
        "garbage": "Bearer garbage",
        "three parts of garbage": "Bearer a.b.c",
        "wrong scheme": f"Basic {token(key, service_url)}",
        "expired": f"Bearer {token(key, service_url, exp=now - 3600, nbf=now - 7200)}",
        "wrong audience": f"Bearer {token(key, service_url, aud='someone-else')}",
        "wrong issuer": f"Bearer {token(key, service_url, iss='https://evil.example')}",
        "unknown kid": f"Bearer {token(stranger, service_url)}",
        "forged signature": f"Bearer {token(unendorsed, service_url)}",
        "serviceurl mismatch": f"Bearer {token(key, 'http://127.0.0.1:1/elsewhere')}",
        "alg none": "Bearer "
        + jwt.encode(
            {"iss": ISSUER, "aud": APP_ID, "serviceurl": service_url, "exp": now + 600},
            None,
            algorithm="none",
            headers={"kid": key.kid},
        ),
        "alg HS256": "Bearer "
        + jwt.encode(
            {"iss": ISSUER, "aud": APP_ID, "serviceurl": service_url, "exp": now + 600},
            "a-shared-secret-long-enough-for-hs256-xx",
            algorithm="HS256",
            headers={"kid": key.kid},
        ),
    }


async def test_every_forged_token_is_401_and_nothing_is_sent(
    secured_bot: TestClient, connector: FakeConnector, key: SigningKey
) -> None:
    stranger = SigningKey("key-unknown")
    for name, authorization in forged_tokens(key, stranger, connector.url).items():
        status = await post(secured_bot, connector, authorization)
        assert status == 401, name
    await asyncio.sleep(0.2)
    assert connector.activities == []
    # and the bot still answers a genuine request
    assert await post(secured_bot, connector, f"Bearer {token(key, connector.url)}") == 202
    assert (await connector.wait_for_messages(1))[0]["text"] == "fake: hello"


async def test_unendorsed_channel_is_401(tmp_path: Path, connector: FakeConnector) -> None:
    webchat_only = SigningKey("key-w", endorsements=["webchat"])
    server = FakeKeyServer([webchat_only])
    await server._server.start_server()
    settings = Settings(
        app_id=APP_ID, storage=f"sqlite:///{tmp_path}/s.db", openid_metadata_url=server.metadata_url
    )
    client = TestClient(
        TestServer(
            create_app(
                settings,
                model=FakeChatModel(),
                credentials_factory=OfflineCredentialFactory(APP_ID, ""),
            ),
            host="127.0.0.1",
        )
    )
    await client.start_server()
    try:
        assert await post(client, connector, f"Bearer {token(webchat_only, connector.url)}") == 401
    finally:
        await client.close()
        await server._server.close()
    assert connector.activities == []


async def test_rotated_key_is_accepted_after_one_refetch(
    secured_bot: TestClient, connector: FakeConnector, key: SigningKey, key_server: FakeKeyServer
) -> None:
    assert await post(secured_bot, connector, f"Bearer {token(key, connector.url)}") == 202
    assert key_server.fetches == 1

    rotated = SigningKey("key-2")
    key_server.keys = [rotated]
    source = JwtTokenExtractor.metadataCache[
        AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL
    ]
    # Within a minute of the last fetch, an unknown kid does not refetch (no fetch storms)...
    assert await post(secured_bot, connector, f"Bearer {token(rotated, connector.url)}") == 401
    assert key_server.fetches == 1
    # ...after a minute it refetches once, and the new key works.
    real_clock = time.monotonic
    source.clock = lambda: real_clock() + 61
    assert await post(secured_bot, connector, f"Bearer {token(rotated, connector.url)}") == 202
    assert await post(secured_bot, connector, f"Bearer {token(rotated, connector.url)}") == 202
    assert key_server.fetches == 2
    await connector.wait_for_messages(3)


async def test_slow_key_server_does_not_block_the_event_loop(
    secured_bot: TestClient, connector: FakeConnector, key: SigningKey, key_server: FakeKeyServer
) -> None:
    key_server.delay = 5.0
    pending = asyncio.create_task(
        post(secured_bot, connector, f"Bearer {token(key, connector.url)}")
    )
    await asyncio.sleep(0.3)  # the token check is now waiting on the key server
    started = time.perf_counter()
    health = await secured_bot.get("/healthz")
    elapsed = time.perf_counter() - started
    assert health.status == 200
    assert elapsed < 2, f"/healthz took {elapsed * 1000:.0f} ms (the key server takes 5 s)"
    assert await pending == 202
