"""POST /api/messages: validate, authenticate, decide who the sender is (bot/turns/identity.py),
rate-limit, store the activity in the inbox with that identity, acknowledge."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

from aiohttp import web
from botbuilder.core import Bot, InvokeResponse, serializer_helper
from botbuilder.schema import Activity, ActivityTypes, DeliveryModes
from botframework.connector.auth import AuthenticationConstants
from botframework.connector.auth.authenticate_request_result import AuthenticateRequestResult

from bot.channels.connector_client import RetryingCloudAdapter
from bot.http.auth import AuthUnavailable, Unauthorized, authenticate
from bot.http.rate_limit import UserRateLimit
from bot.http.request_parsing import read_activity
from bot.security.local_secret import LOCAL_CHANNEL_HEADER, LocalSecret
from bot.security.origin_guard import OriginGuard
from bot.security.service_urls import service_url_allowed
from bot.settings import Settings
from bot.storage import StorageUnavailable
from bot.turns.identity import as_identity, vouched_identity
from bot.turns.inbox_entries import entry_body
from bot.turns.runner import ConversationBusy, RunnerBusy, TurnRunner, TurnTimedOut
from bot.turns.teams_rules import addressed_to_bot

logger = logging.getLogger(__name__)

BUSY_RETRY_AFTER_S = 5  # Retry-After (seconds) for a conversation with its share of the queue


def conversation_key(activity: Activity) -> str:
    """The same key botbuilder's ConversationState uses: channel/conversations/id."""
    return f"{activity.channel_id}/conversations/{activity.conversation.id}"


def is_synchronous(activity: Activity) -> bool:
    """Invokes and expectReplies carry their answer in the HTTP response, so they are awaited."""
    return (
        activity.type == ActivityTypes.invoke
        or activity.delivery_mode == DeliveryModes.expect_replies
    )


class MessagesEndpoint:
    """The channel-facing handler. Every client mistake is a 4xx; nothing here returns a 500."""

    def __init__(
        self,
        settings: Settings,
        adapter: RetryingCloudAdapter,
        bot: Bot,
        runner: TurnRunner,
        *,
        rate_limit: UserRateLimit | None = None,
        guard: OriginGuard | None = None,
        local_secret: LocalSecret | None = None,
    ) -> None:
        self._settings = settings
        self.adapter = adapter
        self._bot = bot
        self.runner = runner
        self.rate_limit = rate_limit
        self._guard = guard
        self._local_secret = local_secret  # what the local Direct Line's forwards carry

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.runner.draining:
            raise web.HTTPServiceUnavailable(text="shutting down", headers={"Retry-After": "5"})
        if self._guard is not None:  # anonymous: no token, so no foreign page (DNS rebinding)
            self._guard.check(request)
        activity, data = await read_activity(request)
        if self._settings.anonymous and not service_url_allowed(
            activity.service_url, self._settings.allowed_service_urls
        ):
            raise web.HTTPForbidden(text="serviceUrl not allowed for an anonymous bot")
        try:
            auth = await authenticate(
                self.adapter.bot_framework_authentication,
                activity,
                request.headers.get("Authorization", ""),
                app_id=self._settings.app_id,
            )
        except Unauthorized as error:
            logger.info("rejected token: %s", error)
            raise web.HTTPUnauthorized(text="invalid or missing token") from None
        except AuthUnavailable:
            logger.warning("cannot verify tokens: signing keys unavailable")
            raise web.HTTPServiceUnavailable(
                text="cannot verify tokens right now", headers={"Retry-After": "5"}
            ) from None
        if not self._settings.anonymous and not _bound_to_service_url(
            auth, activity, self._settings
        ):
            raise web.HTTPForbidden(text="serviceUrl not allowed for this token")
        if activity.type == ActivityTypes.message and not addressed_to_bot(activity):
            # Teams (resource-specific consent) delivers every group message; one that does not
            # @mention the bot gets no answer and is not kept, so it costs no inbox entry, no
            # turn and no share of its sender's rate limit.
            return web.Response(status=200)
        user = vouched_identity(
            activity,
            auth.claims_identity,
            anonymous=self._settings.anonymous,
            from_local_directline=self._from_local_directline(request),
        )
        await self._check_rate(activity, auth, user)
        return await self._enqueue(activity, data, auth, user)

    def _from_local_directline(self, request: web.Request) -> bool:
        """Whether the local Direct Line sent this (it carries the process's secret); 401 for a
        request that names the header with anything else."""
        given = request.headers.get(LOCAL_CHANNEL_HEADER)
        if given is None:
            return False
        if self._local_secret is None or not self._local_secret.matches(given):
            raise web.HTTPUnauthorized(text=f"invalid {LOCAL_CHANNEL_HEADER}")
        return True

    async def _check_rate(
        self, activity: Activity, auth: AuthenticateRequestResult, user: str | None
    ) -> None:
        """429 with Retry-After for a user over the limit, before anything is stored."""
        if self.rate_limit is None:
            return
        try:
            decision = await self.rate_limit.check(activity, user)
        except StorageUnavailable:
            logger.warning("cannot count the message: state store unreachable")
            raise web.HTTPServiceUnavailable(
                text="cannot store the message right now", headers={"Retry-After": "5"}
            ) from None
        if decision.allowed:
            return
        if decision.tell_user:
            self.rate_limit.tell_user(self.adapter, auth, activity, decision.retry_after_s)
        raise web.HTTPTooManyRequests(
            text="too many activities from this user",
            headers={"Retry-After": str(decision.retry_after_s)},
        )

    async def _enqueue(
        self,
        activity: Activity,
        data: dict[str, Any],
        auth: AuthenticateRequestResult,
        user: str | None,
    ) -> web.StreamResponse:
        key = conversation_key(activity)
        try:
            if is_synchronous(activity):
                logic = as_identity(user, self._bot.on_turn)
                turn = partial(self.adapter.process_activity, auth, activity, logic)
                done = self.runner.call(key, turn, activity_id=activity.id)
                if done is None or done.cancelled():
                    return web.json_response({"status": "duplicate"}, status=200)
                # shielded: a redelivery may wait on the same answer (TurnRunner.call)
                return invoke_http_response(await asyncio.shield(done))
            # Stored before the 202: an acknowledged message outlives this replica.
            if not await self.runner.accept(key, activity.id, entry_body(data, auth, user)):
                return web.json_response({"status": "duplicate"}, status=200)
        except ConversationBusy as error:  # this conversation only: the others are admitted
            await self._tell_busy(activity, auth, key)
            raise web.HTTPTooManyRequests(
                text=str(error), headers={"Retry-After": str(BUSY_RETRY_AFTER_S)}
            ) from None
        except RunnerBusy as error:
            raise web.HTTPServiceUnavailable(
                text=str(error), headers={"Retry-After": "5"}
            ) from None
        except TurnTimedOut as error:  # an invoke or expectReplies: its answer never came
            logger.warning("synchronous turn timed out conversation=%s", key)
            # 504, no Retry-After: it may have replied or acted, and is not run again
            raise web.HTTPGatewayTimeout(text=str(error)) from None
        except StorageUnavailable:
            logger.warning("cannot store the activity: state store unreachable")
            raise web.HTTPServiceUnavailable(
                text="cannot store the message right now", headers={"Retry-After": "5"}
            ) from None
        return web.Response(status=202)

    async def _tell_busy(
        self, activity: Activity, auth: AuthenticateRequestResult, key: str
    ) -> None:
        """The rate limit's polite reply, once a minute per conversation, for a message refused
        because its conversation has its share of the turn queue waiting."""
        if self.rate_limit is None:
            return
        try:
            due = await self.rate_limit.notice_due(activity, f"busy/{key}")
        except StorageUnavailable:
            return
        if due:
            self.rate_limit.tell_user(self.adapter, auth, activity, BUSY_RETRY_AFTER_S)


def _bound_to_service_url(
    auth: AuthenticateRequestResult, activity: Activity, settings: Settings
) -> bool:
    """A channel's token names its service URL (botbuilder checked it matches); an Emulator
    token does not, so its activity must name an allowed one (loopback unless configured)."""
    identity = auth.claims_identity
    claims = (identity.claims if identity is not None else None) or {}
    if claims.get(AuthenticationConstants.SERVICE_URL_CLAIM):
        return True
    return service_url_allowed(activity.service_url, settings.allowed_service_urls)


def invoke_http_response(response: InvokeResponse | None) -> web.Response:
    if response is None or response.body is None:  # an empty body (Teams' feedback invoke)
        return web.Response(status=response.status or 200 if response else 200)
    body: Any = response.body
    if body is not None and not isinstance(body, (dict, list, str, int, float, bool)):
        body = serializer_helper(body)
    return web.json_response(body, status=response.status or 200)
