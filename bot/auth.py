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
from botframework.connector.auth import (
    AuthenticationConstants,
    BotFrameworkAuthentication,
    GovernmentConstants,
)
from botframework.connector.auth.authenticate_request_result import AuthenticateRequestResult
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor
from botbuilder.schema import Activity
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
        self, url: str, session: aiohttp.ClientSession, *, clock: Callable[[], float] = time.monotonic
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
                raise AuthUnavailable(f"cannot fetch signing keys: {type(error).__name__}") from None
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
    auth: BotFrameworkAuthentication, activity: Activity, auth_header: str
) -> AuthenticateRequestResult:
    """botbuilder's checks, with every token failure as Unauthorized."""
    try:
        return await auth.authenticate_request(activity, auth_header)
    except AuthUnavailable:
        raise
    except Exception as error:  # PermissionError, jwt errors, IndexError, KeyError, bare Exception
        raise Unauthorized(type(error).__name__) from None
