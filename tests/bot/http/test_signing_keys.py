"""Signing keys while the key server fails: cached keys serve until they expire, refreshes run in
the background one at a time and back off, and an unknown kid refreshes at most once."""

from __future__ import annotations

import asyncio
import base64
import datetime
import time
from collections.abc import Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from botframework.connector.auth import AuthenticationConstants
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from bot.http.signing_keys import (
    KEYS_MAX_AGE_S,
    KEYS_MAX_STALE_S,
    REFRESH_BACKOFF_MAX_S,
    REFRESH_BACKOFF_S,
    UNKNOWN_KID_REFRESH_S,
    AsyncOpenIdMetadata,
    AuthUnavailable,
)
from tests.bot.http.test_auth import FakeKeyServer, SigningKey, post, token
from tests.connector import FakeConnector


class Clock:
    """The real monotonic clock, moved forward by `offset` seconds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def channel_source(clock: Callable[[], float]) -> AsyncOpenIdMetadata:
    source = JwtTokenExtractor.metadataCache[
        AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL
    ]
    assert isinstance(source, AsyncOpenIdMetadata)
    source.clock = clock
    return source


async def settle() -> None:
    await asyncio.sleep(0.2)  # a background refresh against the local key server is done by then


async def test_day_old_keys_serve_while_refreshes_fail_and_back_off(
    secured_bot: TestClient, connector: FakeConnector, key: SigningKey, key_server: FakeKeyServer
) -> None:
    clock = Clock()
    channel_source(clock)
    valid = f"Bearer {token(key, connector.url)}"
    assert await post(secured_bot, connector, valid) == 202
    assert key_server.metadata_requests == 1

    key_server.failing = True
    clock.offset = KEYS_MAX_AGE_S + 1
    statuses = await asyncio.gather(*(post(secured_bot, connector, valid) for _ in range(5)))
    assert statuses == [202] * 5  # the cached keys, while the refresh fails
    await settle()
    assert key_server.metadata_requests == 2  # one refresh for five requests

    clock.offset += REFRESH_BACKOFF_S / 2  # backing off: no new try
    assert await post(secured_bot, connector, valid) == 202
    await settle()
    assert key_server.metadata_requests == 2

    clock.offset += REFRESH_BACKOFF_S  # past the first back-off: one more try, which fails
    assert await post(secured_bot, connector, valid) == 202
    await settle()
    assert key_server.metadata_requests == 3

    clock.offset += REFRESH_BACKOFF_S * 1.5  # the back-off doubled
    assert await post(secured_bot, connector, valid) == 202
    await settle()
    assert key_server.metadata_requests == 3

    key_server.failing = False
    clock.offset += REFRESH_BACKOFF_S
    assert await post(secured_bot, connector, valid) == 202
    await settle()
    assert (key_server.metadata_requests, key_server.fetches) == (4, 2)
    assert await post(secured_bot, connector, valid) == 202  # fresh keys: no more refreshes
    await settle()
    assert key_server.metadata_requests == 4
    await connector.wait_for_messages(11, timeout=60)  # every accepted message answered


async def test_a_slow_refresh_does_not_hold_requests_up(
    secured_bot: TestClient, connector: FakeConnector, key: SigningKey, key_server: FakeKeyServer
) -> None:
    clock = Clock()
    channel_source(clock)
    valid = f"Bearer {token(key, connector.url)}"
    assert await post(secured_bot, connector, valid) == 202
    key_server.delay = 5.0
    clock.offset = KEYS_MAX_AGE_S + 1
    started = time.perf_counter()
    statuses = await asyncio.gather(*(post(secured_bot, connector, valid) for _ in range(3)))
    elapsed = time.perf_counter() - started
    assert statuses == [202] * 3
    assert elapsed < 2, f"requests waited {elapsed:.1f} s for the refresh (it takes 5 s)"
    assert key_server.metadata_requests == 2
    await connector.wait_for_messages(4, timeout=60)


async def test_expired_keys_are_not_served(
    secured_bot: TestClient, connector: FakeConnector, key: SigningKey, key_server: FakeKeyServer
) -> None:
    clock = Clock()
    channel_source(clock)
    valid = f"Bearer {token(key, connector.url)}"
    assert await post(secured_bot, connector, valid) == 202
    key_server.failing = True
    clock.offset = KEYS_MAX_STALE_S + 1
    assert await post(secured_bot, connector, valid) == 503
    key_server.failing = False
    clock.offset += REFRESH_BACKOFF_S
    assert await post(secured_bot, connector, valid) == 202
    await connector.wait_for_messages(2, timeout=60)


async def test_an_unknown_kid_refreshes_at_most_once_while_the_key_server_fails(
    secured_bot: TestClient, connector: FakeConnector, key: SigningKey, key_server: FakeKeyServer
) -> None:
    clock = Clock()
    channel_source(clock)
    valid = f"Bearer {token(key, connector.url)}"
    assert await post(secured_bot, connector, valid) == 202
    key_server.failing = True
    clock.offset = UNKNOWN_KID_REFRESH_S + 1
    unknown = f"Bearer {token(SigningKey('key-new'), connector.url)}"
    statuses = await asyncio.gather(*(post(secured_bot, connector, unknown) for _ in range(5)))
    assert statuses == [401] * 5
    assert key_server.metadata_requests == 2  # one refresh, shared
    assert await post(secured_bot, connector, unknown) == 401
    assert await post(secured_bot, connector, valid) == 202  # the cached keys still serve
    await settle()
    assert key_server.metadata_requests == 2
    await connector.wait_for_messages(2, timeout=60)


async def test_refreshes_back_off_exponentially_up_to_a_cap(key_server: FakeKeyServer) -> None:
    key_server.failing = True
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        source = AsyncOpenIdMetadata(key_server.metadata_url, session, clock=clock)
        with pytest.raises(AuthUnavailable):
            await source.get("key-1")
        waits = []
        for _ in range(10):
            before, wait = source.fetches, 0.0
            while source.fetches == before:
                clock.offset += 1.0
                wait += 1.0
                with pytest.raises(AuthUnavailable):
                    await source.get("key-1")
            waits.append(wait)
    expected = [min(REFRESH_BACKOFF_S * 2**i, REFRESH_BACKOFF_MAX_S) for i in range(10)]
    assert waits == expected
    assert key_server.metadata_requests == 11


def certificate(signer: SigningKey, valid_for: datetime.timedelta) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keys.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signer.private.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + valid_for)
        .sign(signer.private, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


class CertifiedKey(SigningKey):
    def __init__(self, kid: str, valid_for: datetime.timedelta) -> None:
        super().__init__(kid)
        self.x5c = [certificate(self, valid_for)]

    def jwk(self) -> dict[str, object]:
        return {**super().jwk(), "x5c": self.x5c}


async def test_a_key_serves_no_longer_than_its_certificate() -> None:
    server = FakeKeyServer([CertifiedKey("key-c", datetime.timedelta(hours=1))])
    await server._server.start_server()
    clock = Clock()
    try:
        async with aiohttp.ClientSession() as session:
            source = AsyncOpenIdMetadata(server.metadata_url, session, clock=clock)
            assert await source.get("key-c") is not None
            server.failing = True
            clock.offset = 1800
            assert await source.get("key-c") is not None
            clock.offset = 3601
            with pytest.raises(AuthUnavailable):
                await source.get("key-c")
    finally:
        await server._server.close()
