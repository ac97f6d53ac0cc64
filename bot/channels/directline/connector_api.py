"""The local Direct Line service, the bot's side: the Bot Connector API under /v3/conversations.

The bot's replies (streaming updates included) and updates of sent activities, from the bot of
this process only: each request must carry `Authorization: Bearer <the process's secret>`
(bot/security/local_secret.py), which the bot's own connector client sends; without it, 401. The
peer address proves nothing (a reverse proxy on this host makes everyone local). A reply to a
stream the user stopped is refused with 403 ContentStreamNotAllowed, as Teams does after its Stop
button, which stops the generation.
"""

from __future__ import annotations

from aiohttp import web

from bot.channels.directline.store import BOT_ACCOUNT, Activity, Conversation, ConversationStore
from bot.security.local_secret import LocalSecret


class BotConnectorApi:
    """Request handlers for the bot's replies into the conversations of `store`."""

    def __init__(self, store: ConversationStore, secret: LocalSecret) -> None:
        self.store = store
        self._secret = secret

    async def bot_sends(self, request: web.Request) -> web.Response:
        """POST /v3/conversations/{id}/activities[/{replyTo}]: a reply or a streaming update."""
        conversation = self._for_bot(request)
        activity = await read_activity_object(request)
        if conversation.refuses(activity):
            return _connector_error(403, "ContentStreamNotAllowed", "Content stream is not allowed")
        activity.setdefault("from", dict(BOT_ACCOUNT))
        if "reply_to" in request.match_info:
            activity.setdefault("replyToId", request.match_info["reply_to"])
        activity.pop("timestamp", None)
        conversation.add(activity)
        conversation.track_stream(activity)
        return web.json_response({"id": activity["id"]})

    async def bot_updates(self, request: web.Request) -> web.Response:
        """PUT /v3/conversations/{id}/activities/{activityId}: replaces a sent activity."""
        conversation = self._for_bot(request)
        activity = await read_activity_object(request)
        activity["id"] = request.match_info["activity"]
        activity.setdefault("from", dict(BOT_ACCOUNT))
        activity.pop("timestamp", None)
        conversation.add(activity, keep_id=True)
        return web.json_response({"id": activity["id"]})

    def _for_bot(self, request: web.Request) -> Conversation:
        if not self._secret.admits_bearer(request.headers.get("Authorization", "")):
            raise web.HTTPUnauthorized(
                text="the local Direct Line accepts bot activities from this process's bot only",
                headers={"WWW-Authenticate": "Bearer"},
            )
        conversation = self.store.get(request.match_info["conversation"])
        if conversation is None:
            raise web.HTTPNotFound(
                text='{"error": {"code": "BadArgument", "message": "unknown conversation"}}',
                content_type="application/json",
            )
        return conversation


async def read_activity_object(request: web.Request) -> Activity:
    """The JSON activity in the body; 400 when it is not an object with a type."""
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body must be a JSON activity") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str) or not data["type"]:
        raise web.HTTPBadRequest(text="body must be a JSON activity with a type")
    return data


def _connector_error(status: int, code: str, message: str) -> web.Response:
    """An error as the Bot Connector API words it."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
