"""Channel token checks that never block the event loop and never escape as a 500.

botbuilder 4.17.1 fetches the OpenID metadata and signing keys with blocking `requests.get`, only
refreshes them daily (an unknown `kid` raises IndexError), and lets most token errors escape as
exceptions other than PermissionError. botloom keeps botbuilder's validation rules (issuer,
audience, endorsements, algorithms, expiry) and replaces only the key source, through the SDK's
own per-URL metadata cache.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from botbuilder.schema import Activity
from botframework.connector.auth import (
    AuthenticationConstants,
    BotFrameworkAuthentication,
    ConnectorFactory,
    EmulatorValidation,
    GovernmentConstants,
    SkillValidation,
)
from botframework.connector.auth.authenticate_request_result import AuthenticateRequestResult
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor
from jwt.algorithms import RSAAlgorithm

logger = logging.getLogger(__name__)

KEYS_MAX_AGE_S = 24 * 3600  # refresh keys at least daily, as botbuilder does
UNKNOWN_KID_REFRESH_S = 60  # an unknown kid refetches the keys at most this often
FETCH_TIMEOUT_S = 10


class Unauthorized(Exception):
    """The request's token is missing, malformed, expired, or not signed by a trusted key."""


class AuthUnavailable(Exception):
    """The signing keys could not be fetched, so no token can be checked right now."""


@dataclass(frozen=True)
class SigningKey:
    """What botbuilder's JwtTokenExtractor reads from its metadata cache."""

    public_key: Any
    endorsements: list[str]


class AsyncOpenIdMetadata:
    """Signing keys from an OpenID metadata document, fetched with aiohttp.

    Keys are refreshed when older than a day, and when a token names an unknown `kid` (at most
    once every UNKNOWN_KID_REFRESH_S seconds); concurrent refreshes share one fetch.
    """

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._session = session
        self.clock = clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def get(self, key_id: str | None) -> SigningKey | None:
        if self.clock() - self._fetched_at > KEYS_MAX_AGE_S:
            await self._refresh(min_age_s=0)
        if key_id not in self._keys:
            await self._refresh(min_age_s=UNKNOWN_KID_REFRESH_S)
        key = self._keys.get(key_id or "")
        if key is None:
            return None
        try:
            public_key = RSAAlgorithm.from_jwk(json.dumps(key))
        except Exception:
            logger.warning("unusable signing key kid=%s in %s", key_id, self.url)
            return None
        return SigningKey(public_key, list(key.get("endorsements") or []))

    async def _refresh(self, min_age_s: float) -> None:
        async with self._lock:
            if self.clock() - self._fetched_at < min_age_s:
                return  # another request just refreshed
            try:
                timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
                async with self._session.get(self.url, timeout=timeout) as response:
                    response.raise_for_status()
                    jwks_uri = (await response.json(content_type=None))["jwks_uri"]
                async with self._session.get(jwks_uri, timeout=timeout) as response:
                    response.raise_for_status()
                    keys = (await response.json(content_type=None))["keys"]
            except (aiohttp.ClientError, TimeoutError, KeyError, TypeError, ValueError) as error:
                raise AuthUnavailable(
                    f"cannot fetch signing keys: {type(error).__name__}"
                ) from None
            finally:
                self.fetches += 1
            self._keys = {k["kid"]: k for k in keys if isinstance(k, dict) and "kid" in k}
            self._fetched_at = self.clock()


def install_async_metadata(
    session: aiohttp.ClientSession,
    *,
    channel_url: str | None = None,
    emulator_url: str | None = None,
) -> dict[str, AsyncOpenIdMetadata]:
    """Put async key sources into botbuilder's metadata cache, under the URLs botbuilder asks for.

    `channel_url` / `emulator_url` fetch the keys from elsewhere (a sovereign cloud's mirror, or
    a fake key server in tests) while botbuilder's validation rules stay as they are.
    """
    sources = {
        AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL: channel_url,
        AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL: emulator_url,
        GovernmentConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL: None,
        GovernmentConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL: None,
    }
    installed = {
        key: AsyncOpenIdMetadata(fetch_url or key, session) for key, fetch_url in sources.items()
    }
    JwtTokenExtractor.metadataCache.update(installed)
    return installed


async def authenticate(
    auth: BotFrameworkAuthentication, activity: Activity, auth_header: str, *, app_id: str = ""
) -> AuthenticateRequestResult:
    """botbuilder's checks, with every token failure as Unauthorized; with an `app_id`, Emulator
    tokens must also be addressed to this bot (see `check_emulator_audience`)."""
    try:
        result = await auth.authenticate_request(activity, auth_header)
    except AuthUnavailable:
        raise
    except Exception as error:  # PermissionError, jwt errors, IndexError, KeyError, bare Exception
        raise Unauthorized(type(error).__name__) from None
    if app_id and result.claims_identity is not None:
        check_emulator_audience(result.claims_identity.claims or {}, app_id)
    return result


EMULATOR_ISSUERS = frozenset(
    EmulatorValidation.TO_BOT_FROM_EMULATOR_TOKEN_VALIDATION_PARAMETERS.issuer
)


def check_emulator_audience(claims: dict[str, Any], app_id: str) -> None:
    """Raise Unauthorized unless an Emulator token (one of the Emulator's issuers, and not a
    skill's token) names this bot as its audience (`aud`) and as the app it was issued to
    (`appid` in version 1.0 tokens, `azp` in 2.0).

    botbuilder checks only `appid`/`azp` on Emulator tokens, and the bot's own outbound token
    (audience https://api.botframework.com, issued by the same tenant to the bot's app id, and
    sent with every reply to every allowed service URL) passes that check; its audience does not.
    Channel tokens (issuer https://api.botframework.com) are not Emulator tokens: botbuilder
    checks their audience itself.
    """
    if claims.get("iss") not in EMULATOR_ISSUERS or SkillValidation.is_skill_claim(claims):
        return
    audience = claims.get(AuthenticationConstants.AUDIENCE_CLAIM)
    if audience != app_id and audience != [app_id]:
        raise Unauthorized("Emulator token for another audience")
    version = claims.get(AuthenticationConstants.VERSION_CLAIM)
    party = (
        AuthenticationConstants.AUTHORIZED_PARTY
        if version == "2.0"
        else AuthenticationConstants.APP_ID_CLAIM
    )
    if claims.get(party) != app_id:
        raise Unauthorized("Emulator token issued to another app")


class CachingBotFrameworkAuthentication(BotFrameworkAuthentication):
    """botbuilder's authentication, minus its per-turn client construction.

    CloudAdapter builds a new ConnectorClient and UserTokenClient for every turn, and msrest's
    retry-policy constructor alone costs milliseconds of CPU each time: about half of a turn's CPU
    in bench/endpoint.py. Clients are reused per (app id, service URL, audience), as botbuilder's
    C# adapter does; both caches are bounded.
    """

    MAX_CLIENTS = 1024

    def __init__(self, inner: BotFrameworkAuthentication) -> None:
        self._inner = inner
        self._connectors: dict[tuple[Any, ...], Any] = {}
        self._token_clients: dict[Any, Any] = {}

    async def authenticate_request(
        self, activity: Activity, auth_header: str
    ) -> AuthenticateRequestResult:
        result = await self._inner.authenticate_request(activity, auth_header)
        if result.connector_factory is not None:
            result.connector_factory = _CachingConnectorFactory(
                result.connector_factory, self._connectors
            )
        return result

    async def authenticate_streaming_request(
        self, auth_header: str, channel_id_header: str
    ) -> AuthenticateRequestResult:
        return await self._inner.authenticate_streaming_request(auth_header, channel_id_header)

    def create_connector_factory(self, claims_identity: Any) -> Any:
        return _CachingConnectorFactory(
            self._inner.create_connector_factory(claims_identity), self._connectors
        )

    async def create_user_token_client(self, claims_identity: Any) -> Any:
        claims = claims_identity.claims or {}
        key = claims.get("appid") or claims.get("azp")
        client = self._token_clients.get(key)
        if client is None:
            client = await self._inner.create_user_token_client(claims_identity)
            _bounded_put(self._token_clients, key, client, self.MAX_CLIENTS)
        return client

    def create_bot_framework_client(self) -> Any:
        return self._inner.create_bot_framework_client()

    def get_originating_audience(self) -> str:
        return self._inner.get_originating_audience()

    async def authenticate_channel_request(self, auth_header: str) -> Any:
        return await self._inner.authenticate_channel_request(auth_header)


class _CachingConnectorFactory(ConnectorFactory):
    def __init__(self, inner: ConnectorFactory, cache: dict[tuple[Any, ...], Any]) -> None:
        self._inner = inner
        self._cache = cache

    async def create(self, service_url: str, audience: str | None = None) -> Any:
        key = (getattr(self._inner, "_app_id", None), service_url, audience)
        client = self._cache.get(key)
        if client is None:
            client = await self._inner.create(service_url, audience)
            _bounded_put(self._cache, key, client, CachingBotFrameworkAuthentication.MAX_CLIENTS)
        return client


def _bounded_put(cache: dict[Any, Any], key: Any, value: Any, limit: int) -> None:
    if len(cache) >= limit:
        cache.pop(next(iter(cache)))
    cache[key] = value
