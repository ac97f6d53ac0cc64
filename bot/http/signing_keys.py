"""Signing keys for channel and Emulator tokens, fetched with aiohttp off the event loop.

botbuilder 4.17.1 fetches the OpenID metadata and signing keys with blocking `requests.get` and
only refreshes them daily (an unknown `kid` raises IndexError). `install_async_metadata` puts an
`AsyncOpenIdMetadata` in botbuilder's per-URL metadata cache instead: botbuilder's validation rules
stay as they are, and a key server that is down for a while (a DNS blip, an outage) costs nothing
while the cached keys are valid.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import aiohttp
from botframework.connector.auth import AuthenticationConstants, GovernmentConstants
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor
from cryptography import x509
from jwt.algorithms import RSAAlgorithm

logger = logging.getLogger(__name__)

KEYS_MAX_AGE_S = 24 * 3600  # keys this old are refreshed in the background, as botbuilder does
KEYS_MAX_STALE_S = 7 * 24 * 3600  # while refreshes fail, cached keys serve at most this long
UNKNOWN_KID_REFRESH_S = 60  # an unknown kid refetches the keys at most this often
REFRESH_BACKOFF_S = 2.0  # after a failed refresh, the next waits this long, doubling each time
REFRESH_BACKOFF_MAX_S = 300.0  # ... up to this
FETCH_TIMEOUT_S = 10


class AuthUnavailable(Exception):
    """The signing keys could not be fetched, so no token can be checked right now."""


@dataclass(frozen=True)
class SigningKey:
    """What botbuilder's JwtTokenExtractor reads from its metadata cache."""

    public_key: Any
    endorsements: list[str]


@dataclass(frozen=True)
class _CachedKey:
    jwk: dict[str, Any]
    expires_at: float  # on the source's clock


class AsyncOpenIdMetadata:
    """Signing keys from an OpenID metadata document, fetched with aiohttp.

    Cached keys serve until they expire: their certificate's end of validity (`x5c`), and at most
    KEYS_MAX_STALE_S after the fetch that last listed them; a successful refresh replaces them
    all. Once KEYS_MAX_AGE_S old they are refreshed in the background, one refresh at a time,
    while tokens keep being checked against the cached keys; a failed refresh is retried after
    REFRESH_BACKOFF_S, doubling up to REFRESH_BACKOFF_MAX_S. A token naming an unknown `kid`
    waits for a refresh when none started in the last UNKNOWN_KID_REFRESH_S (requests arriving
    meanwhile share it). Only when no cached key is valid does a request wait for the keys, and
    then a failure (or a refresh still backing off) raises AuthUnavailable.
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
        self._keys: dict[str, _CachedKey] = {}
        self._fetched_at = float("-inf")  # the last successful refresh
        self._tried_at = float("-inf")  # the last refresh started
        self._retry_at = float("-inf")  # no refresh before this (backing off)
        self._failures = 0
        self._refresh: asyncio.Task[None] | None = None
        self.fetches = 0  # refreshes tried

    async def get(self, key_id: str | None) -> SigningKey | None:
        now = self.clock()
        if not self._valid_keys(now):
            await self._wait_for_refresh()
        elif now - self._fetched_at >= KEYS_MAX_AGE_S:
            self._start_refresh()  # in the background: this request goes on with the cache
        key = self._key(key_id)
        if key is None and key_id and self.clock() - self._tried_at >= UNKNOWN_KID_REFRESH_S:
            try:
                await self._wait_for_refresh()
            except AuthUnavailable:
                return None  # the cached keys do not know it, and they are all we have
            key = self._key(key_id)
        if key is None:
            return None
        try:
            public_key = RSAAlgorithm.from_jwk(json.dumps(key))
        except Exception:
            logger.warning("unusable signing key kid=%s in %s", key_id, self.url)
            return None
        return SigningKey(public_key, list(key.get("endorsements") or []))

    def _valid_keys(self, now: float) -> bool:
        return any(k.expires_at > now for k in self._keys.values())

    def _key(self, key_id: str | None) -> dict[str, Any] | None:
        cached = self._keys.get(key_id or "")
        if cached is None or cached.expires_at <= self.clock():
            return None
        return cached.jwk

    def _start_refresh(self) -> asyncio.Task[None] | None:
        """The refresh in flight, or a new one; None while backing off."""
        if self._refresh is not None and not self._refresh.done():
            return self._refresh
        if self.clock() < self._retry_at:
            return None
        self._refresh = asyncio.create_task(self._fetch())
        self._refresh.add_done_callback(_retrieve)
        return self._refresh

    async def _wait_for_refresh(self) -> None:
        """Wait for a refresh (without cancelling it if this request is cancelled)."""
        refresh = self._start_refresh()
        if refresh is None:
            raise AuthUnavailable("cannot fetch signing keys: retrying later")
        await asyncio.shield(refresh)

    async def _fetch(self) -> None:
        self.fetches += 1
        self._tried_at = self.clock()
        try:
            timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
            async with self._session.get(self.url, timeout=timeout) as response:
                response.raise_for_status()
                jwks_uri = (await response.json(content_type=None))["jwks_uri"]
            async with self._session.get(jwks_uri, timeout=timeout) as response:
                response.raise_for_status()
                keys = (await response.json(content_type=None))["keys"]
            now = self.clock()
            fresh = {
                k["kid"]: _CachedKey(k, now + _valid_for(k))
                for k in keys
                if isinstance(k, dict) and "kid" in k
            }
        except (
            aiohttp.ClientError,
            TimeoutError,
            KeyError,
            TypeError,
            ValueError,
            RuntimeError,  # the session closed under a background refresh
        ) as error:
            self._failures += 1
            delay = min(REFRESH_BACKOFF_S * 2 ** (self._failures - 1), REFRESH_BACKOFF_MAX_S)
            self._retry_at = self.clock() + delay
            logger.warning(
                "cannot refresh signing keys from %s: %s (next try in %.0f s)",
                self.url,
                type(error).__name__,
                delay,
            )
            raise AuthUnavailable(f"cannot fetch signing keys: {type(error).__name__}") from None
        self._keys, self._fetched_at = fresh, now
        self._failures, self._retry_at = 0, float("-inf")

    async def close(self) -> None:
        """Stop a refresh in flight (before its session closes)."""
        if self._refresh is not None and not self._refresh.done():
            self._refresh.cancel()
            with suppress(asyncio.CancelledError, AuthUnavailable):
                await self._refresh


def _valid_for(jwk: dict[str, Any]) -> float:
    """Seconds a key fetched now may serve: until its certificate expires (when it has one),
    and at most KEYS_MAX_STALE_S."""
    chain = jwk.get("x5c")
    if isinstance(chain, list) and chain:
        try:
            certificate = x509.load_der_x509_certificate(base64.b64decode(chain[0]))
            return min(certificate.not_valid_after_utc.timestamp() - time.time(), KEYS_MAX_STALE_S)
        except (ValueError, TypeError):
            logger.warning("unreadable certificate of signing key kid=%s", jwk.get("kid"))
    return KEYS_MAX_STALE_S


def _retrieve(task: asyncio.Task[None]) -> None:
    """A background refresh's failure is logged by the refresh itself."""
    if not task.cancelled():
        task.exception()


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
