"""Channel token checks that never block the event loop and never escape as a 500.

botbuilder 4.17.1 fetches the OpenID metadata and signing keys with blocking `requests.get`, only
refreshes them daily (an unknown `kid` raises IndexError), and lets most token errors escape as
exceptions other than PermissionError. botloom keeps botbuilder's validation rules (issuer,
audience, endorsements, algorithms, expiry) and replaces only the key source, through the SDK's
own per-URL metadata cache (bot/http/signing_keys.py). It adds one rule: an Emulator token must
name this bot as its audience.
"""

from __future__ import annotations

from typing import Any

from botbuilder.schema import Activity
from botframework.connector.auth import (
    AuthenticationConstants,
    BotFrameworkAuthentication,
    ConnectorFactory,
    EmulatorValidation,
    SkillValidation,
)
from botframework.connector.auth.authenticate_request_result import AuthenticateRequestResult

from bot.http.signing_keys import AuthUnavailable, install_async_metadata

__all__ = ["AuthUnavailable", "Unauthorized", "authenticate", "install_async_metadata"]


class Unauthorized(Exception):
    """The request's token is missing, malformed, expired, or not signed by a trusted key."""


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
