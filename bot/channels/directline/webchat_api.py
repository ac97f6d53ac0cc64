"""The local Direct Line service, Web Chat's side: the Direct Line 3.0 API, and the bot's user.

Web Chat side (Direct Line 3.0, under /v3/directline): generate a token, start a conversation,
reconnect, refresh the token, post an activity, get activities after a watermark (polling), or
receive them on the conversation's websocket (`streamUrl`). Each conversation has its own tokens,
which expire after `expires_in` seconds (a refresh issues a new one); any other bearer token
starts a new conversation (this is a local development tool), at most so many per client
(429 beyond: store.py).

Users: `POST /tokens/generate` (what the /chat page does) makes a conversation whose user id the
server chooses ("dl_…") and puts in the token, where Web Chat reads it. Such a user is vouched
for: the activities it forwards carry this process's secret, and the bot keeps that user's memory
(bot/turns/identity.py). A conversation started otherwise is bound to the first user id a client
names, which vouches for no one. Either way, an activity from another id is refused (403).

The bot replies through the Bot Connector API beside it (connector_api.py). User activities reach
the bot the way a channel's do (forwarding.py), with channelId "directline" and this app as
serviceUrl.

Like Teams' Stop button, a user message "stop" while a reply streams is not forwarded: the next
update of that stream is refused with 403 ContentStreamNotAllowed, which stops the generation.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from contextlib import suppress
from typing import Any

import aiohttp
from aiohttp import web

from bot.channels.directline.connector_api import read_activity_object
from bot.channels.directline.forwarding import CHANNEL_ID, BotForwarder
from bot.channels.directline.store import (
    BOT_ACCOUNT,
    Activity,
    Conversation,
    ConversationStore,
    TooManyConversations,
)
from bot.security.local_secret import LocalSecret
from bot.security.service_urls import is_loopback_host

logger = logging.getLogger(__name__)

STOP_WORDS = ("stop", "/stop")


class LocalDirectLine:
    """Request handlers and the state behind them; `messages_path` is the bot's endpoint."""

    def __init__(
        self,
        store: ConversationStore | None = None,
        messages_path: str = "/api/messages",
        secret: LocalSecret | None = None,
    ) -> None:
        self.store = store or ConversationStore()
        self.secret = secret or LocalSecret()
        self._forwarder = BotForwarder(messages_path, self.secret)
        self._sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    async def close_sockets(self) -> None:
        """Close the websockets (they would hold up the server's shutdown)."""
        for socket in list(self._sockets):
            await socket.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"server shutdown")

    async def close(self) -> None:
        """Stop forwarding, close the websockets and the HTTP session (app cleanup)."""
        await self._forwarder.stop()
        await self.close_sockets()
        await self._forwarder.close()

    # Web Chat side -----------------------------------------------------------------------

    async def generate_token(self, request: web.Request) -> web.Response:
        """A new conversation for a user the server names ("dl_…"), carried in its token."""
        user_id = f"dl_{secrets.token_hex(12)}"
        conversation, token = self._create(request, user_id=user_id, vouched=True)
        return self._token_reply(conversation, token)

    async def start_conversation(self, request: web.Request) -> web.Response:
        """The conversation of a live bearer token, else a new one. A body `{"user": {"id": ...}}`
        (Direct Line JS sends the user id it was given) names a conversation's user when its
        token does not. Once the user is known, the bot hears that they joined (and says hello)
        before the first message."""
        token = _bearer(request)
        conversation = self.store.by_token(token)
        if conversation is None:
            conversation, token = self._create(request)
        user = await _user_of(request)
        if conversation.user_id is None and user is not None:
            conversation.user_id = user["id"]
        if user is None or user["id"] != conversation.user_id:
            user = _account(conversation.user_id) if conversation.user_id else None
        if user is not None:
            self._forwarder.forward(conversation, user, self.own_base(request), None)
        return web.json_response(
            self._conversation_info(request, conversation, token, -1), status=201
        )

    async def reconnect(self, request: web.Request) -> web.Response:
        conversation, token = self.authorized(request)
        watermark = _watermark(request.query.get("watermark"))
        return web.json_response(self._conversation_info(request, conversation, token, watermark))

    async def refresh_token(self, request: web.Request) -> web.Response:
        """A new token for the conversation of a live one (the old one still expires when it
        said); an expired or unknown token is refused."""
        conversation = self.store.by_token(_bearer(request))
        if conversation is None:
            raise web.HTTPForbidden(text="unknown or expired token")
        return self._token_reply(conversation, self.store.issue_token(conversation))

    def _token_reply(self, conversation: Conversation, token: str) -> web.Response:
        reply = {"conversationId": conversation.id, "token": token, "expires_in": self._lifetime()}
        return web.json_response(reply)

    async def post_activity(self, request: web.Request) -> web.Response:
        conversation, _ = self.authorized(request)
        activity = await read_activity_object(request)
        return web.json_response({"id": self.accept(request, conversation, activity)})

    def accept(self, request: web.Request, conversation: Conversation, activity: Activity) -> str:
        """Add a user's activity to the conversation and forward it to the bot; its id."""
        sender = activity.get("from")
        sender = sender if isinstance(sender, dict) else {}
        sender_id = str(sender.get("id") or conversation.user_id or "user")
        if conversation.user_id is None:
            conversation.user_id = sender_id  # the first id a client names
        elif sender_id != conversation.user_id:
            raise web.HTTPForbidden(text="from.id is not the user of this conversation's token")
        activity["from"] = {**sender, "id": sender_id, "role": "user"}
        activity.update(
            channelId=CHANNEL_ID, recipient=dict(BOT_ACCOUNT), serviceUrl=self.own_base(request)
        )
        activity.pop("timestamp", None)
        conversation.add(activity)
        streaming = conversation.streaming_now()
        if _is_stop(activity) and streaming:
            conversation.stopped_streams |= streaming
            logger.info("user stopped the stream conversation=%s", conversation.id)
        elif activity["type"] != "typing":
            sender, base = activity["from"], activity["serviceUrl"]
            self._forwarder.forward(conversation, sender, base, activity)
        return str(activity["id"])

    async def get_activities(self, request: web.Request) -> web.Response:
        conversation, _ = self.authorized(request)
        activities, watermark = conversation.after(_watermark(request.query.get("watermark")))
        return web.json_response({"activities": activities, "watermark": str(watermark)})

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        """The conversation's websocket: every activity after the watermark, as they arrive, in
        `{"activities": [...], "watermark": "n"}` frames. Web Chat pings with empty messages."""
        conversation, _ = self.authorized(request, token=request.query.get("t", ""))
        cursor = _watermark(request.query.get("watermark"))
        socket = web.WebSocketResponse(heartbeat=30.0)
        await socket.prepare(request)
        self._sockets.add(socket)
        reader = asyncio.create_task(_read_until_closed(socket))
        try:
            while not socket.closed:
                changed = conversation.changed()
                activities, watermark = conversation.after(cursor)
                if activities:
                    await socket.send_json({"activities": activities, "watermark": str(watermark)})
                    cursor = watermark
                    continue
                waiter = asyncio.create_task(changed.wait())
                await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if reader.done():
                    break
        except ConnectionResetError:
            pass
        finally:
            reader.cancel()
            await socket.close()
        return socket

    def _create(
        self, request: web.Request, *, user_id: str | None = None, vouched: bool = False
    ) -> tuple[Conversation, str]:
        """A new conversation for the request's client; 429 with a reason past a bound."""
        client = f"{request.headers.get('Origin', '')} {request.remote or ''}"
        try:
            return self.store.create(client, user_id=user_id, vouched=vouched)
        except TooManyConversations as refused:
            raise web.HTTPTooManyRequests(
                text=str(refused), headers={"Retry-After": str(refused.retry_after_s)}
            ) from None

    def own_base(self, request: web.Request) -> str:
        """This server's loopback base URL, which the bot's replies go to (and which may be
        sent the process's secret)."""
        base = _loopback_base(request)
        self.secret.add_own_service_url(base)
        return base

    def _lifetime(self) -> int:
        return int(self.store.token_lifetime_s)

    def _conversation_info(
        self, request: web.Request, conversation: Conversation, token: str, watermark: int
    ) -> dict[str, Any]:
        scheme = "wss" if request.secure else "ws"
        stream_url = f"{scheme}://{request.host}/v3/directline/conversations/{conversation.id}/stream?t={token}"
        if watermark >= 0:
            stream_url += f"&watermark={watermark}"
        return {
            "conversationId": conversation.id,
            "token": token,
            "expires_in": self._lifetime(),
            "streamUrl": stream_url,
        }

    def authorized(
        self, request: web.Request, token: str | None = None
    ) -> tuple[Conversation, str]:
        """The conversation named in the path and the token, which must be one of its live
        ones (403 otherwise, saying whether it expired)."""
        conversation = self.store.get(request.match_info["conversation"])
        if conversation is None:
            raise web.HTTPNotFound(text="unknown conversation")
        given = token if token is not None else _bearer(request)
        admitted = conversation.admits(given, self.store.clock())
        if admitted is None:
            raise web.HTTPForbidden(text="token does not match the conversation")
        if not admitted:
            raise web.HTTPForbidden(text="token expired")
        return conversation, given


def _account(user_id: str) -> dict[str, Any]:
    return {"id": user_id, "name": user_id, "role": "user"}


async def _user_of(request: web.Request) -> dict[str, Any] | None:
    """The user named in a start-conversation body, if any."""
    if not request.can_read_body:
        return None
    try:
        body = await request.json()
    except ValueError:
        return None
    user = body.get("user") if isinstance(body, dict) else None
    if not isinstance(user, dict):
        return None
    user_id = user.get("id")
    if not isinstance(user_id, str) or not user_id.strip():
        return None
    return {**_account(user_id), "name": str(user.get("name") or user_id)}


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _watermark(raw: str | None) -> int:
    try:
        return int(raw) if raw not in (None, "", "null", "undefined") else -1
    except ValueError:
        raise web.HTTPBadRequest(text="watermark must be a number") from None


def _is_stop(activity: Activity) -> bool:
    text = activity.get("text")
    return (
        activity.get("type") == "message"
        and isinstance(text, str)
        and text.strip().lower() in STOP_WORDS
    )


def _loopback_base(request: web.Request) -> str:
    """This server as the bot reaches it: the loopback address the request came in on, or
    127.0.0.1 when the browser used another address of this machine."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        raise web.HTTPInternalServerError(text="cannot tell this server's address")
    host, port = str(sockname[0]), int(sockname[1])
    if not is_loopback_host(host):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _read_until_closed(socket: web.WebSocketResponse) -> None:
    with suppress(Exception):
        async for _ in socket:  # pings (empty messages) and anything else are ignored
            pass
