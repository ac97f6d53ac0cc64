"""POST /api/messages: validate, authenticate, queue the turn, acknowledge at once."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from aiohttp import web
from botbuilder.core import Bot, InvokeResponse, TurnContext, serializer_helper
from botbuilder.schema import Activity, ActivityTypes, DeliveryModes
from botframework.connector.auth.authenticate_request_result import AuthenticateRequestResult

from bot.auth import AuthUnavailable, Unauthorized, authenticate
from bot.inbound import read_activity
from bot.outbound import RetryingCloudAdapter
from bot.service_urls import service_url_allowed
from bot.settings import Settings
from bot.turn_runner import RunnerBusy, TurnRunner

logger = logging.getLogger(__name__)

ONE_MOMENT = (
    "One moment, please: I'm still answering your previous message. Send this again shortly."
)


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
        self, settings: Settings, adapter: RetryingCloudAdapter, bot: Bot, runner: TurnRunner
    ) -> None:
        self._settings = settings
        self.adapter = adapter
        self._bot = bot
        self.runner = runner

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.runner.draining:
            raise web.HTTPServiceUnavailable(text="shutting down", headers={"Retry-After": "5"})
        activity = await read_activity(request)
        if self._settings.anonymous and not service_url_allowed(
            activity.service_url, self._settings.allowed_service_urls
        ):
            raise web.HTTPForbidden(text="serviceUrl not allowed for an anonymous bot")
        try:
            auth = await authenticate(
                self.adapter.bot_framework_authentication,
                activity,
                request.headers.get("Authorization", ""),
            )
        except Unauthorized as error:
            logger.info("rejected token: %s", error)
            raise web.HTTPUnauthorized(text="invalid or missing token") from None
        except AuthUnavailable:
            logger.warning("cannot verify tokens: signing keys unavailable")
            raise web.HTTPServiceUnavailable(
                text="cannot verify tokens right now", headers={"Retry-After": "5"}
            ) from None
        return await self._enqueue(activity, auth)

    async def _enqueue(
        self, activity: Activity, auth: AuthenticateRequestResult
    ) -> web.StreamResponse:
        key = conversation_key(activity)
        turn = partial(self.adapter.process_activity, auth, activity, self._bot.on_turn)
        one_moment = partial(self.adapter.process_activity, auth, activity, _say_one_moment)
        try:
            done = self.runner.submit(
                key, turn, activity_id=activity.id, on_lock_timeout=one_moment
            )
        except RunnerBusy as error:
            raise web.HTTPServiceUnavailable(
                text=str(error), headers={"Retry-After": "5"}
            ) from None
        if done is None:
            return web.json_response({"status": "duplicate"}, status=200)
        if not is_synchronous(activity):
            done.add_done_callback(partial(_log_failure, activity.conversation.id))
            return web.Response(status=202)
        return invoke_http_response(await done)


def invoke_http_response(response: InvokeResponse | None) -> web.Response:
    if response is None:
        return web.Response(status=200)
    body: Any = response.body
    if body is not None and not isinstance(body, (dict, list, str, int, float, bool)):
        body = serializer_helper(body)
    return web.json_response(body, status=response.status or 200)


async def _say_one_moment(turn_context: TurnContext) -> None:
    if turn_context.activity.type == ActivityTypes.message:
        await turn_context.send_activity(ONE_MOMENT)


def _log_failure(conversation_id: str, done: Any) -> None:
    if done.cancelled():
        logger.warning("turn cancelled conversation=%s", conversation_id)
    elif done.exception() is not None:
        logger.error("turn failed conversation=%s", conversation_id, exc_info=done.exception())
