"""The local Direct Line service, Web Chat's side: the Direct Line 3.0 API, and the bot's user.

Web Chat side (Direct Line 3.0, under /v3/directline): start a conversation, reconnect, refresh
the token, post an activity, get activities after a watermark (polling), or receive them on the
conversation's websocket (`streamUrl`). Each conversation has its own token; any bearer token
starts a conversation (this is a local development tool).

The bot replies through the Bot Connector API beside it (connector_api.py). User activities reach
the bot the way a channel's do: POSTed to this app's own /api/messages on loopback, with channelId
"directline" and this app as serviceUrl, one at a time per conversation.

Like Teams' Stop button, a user message "stop" while a reply streams is not forwarded: the next
update of that stream is refused with 403 ContentStreamNotAllowed, which stops the generation.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from collections.abc import Coroutine
from contextlib import suppress
from typing import Any

import aiohttp
from aiohttp import web

from bot.channels.directline.connector_api import read_activity_object
from bot.channels.directline.store import BOT_ACCOUNT, Activity, Conversation, ConversationStore
from bot.security.service_urls import is_loopback_host

logger = logging.getLogger(__name__)

CHANNEL_ID = "directline"
TOKEN_LIFETIME_S = 3600
STOP_WORDS = ("stop", "/stop")
FORWARD_TIMEOUT_S = 30.0


class LocalDirectLine:
    """Request handlers and the state behind them; `messages_path` is the bot's endpoint."""

    def __init__(
        self, store: ConversationStore | None = None, messages_path: str = "/api/messages"
    ) -> None:
        self.store = store or ConversationStore()
        self._messages_path = messages_path
        self._session: aiohttp.ClientSession | None = None
        self._forwards: set[asyncio.Task[None]] = set()
        self._sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    async def close_sockets(self) -> None:
        """Close the websockets (they would hold up the server's shutdown)."""
        for socket in list(self._sockets):
            await socket.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"server shutdown")

    async def close(self) -> None:
        """Stop forwarding, close the websockets and the HTTP session (app cleanup)."""
        for task in list(self._forwards):
            task.cancel()
        if self._forwards:
            await asyncio.wait(self._forwards)
        await self.close_sockets()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # Web Chat side -----------------------------------------------------------------------

    async def start_conversation(self, request: web.Request) -> web.Response:
        """Web Chat sends `{"user": {"id": ...}}`: the bot hears that this user joined (and says
        hello) before the first message."""
        conversation = self.store.by_token(_bearer(request)) or self.store.create()
        user = await _user_of(request)
        if user is not None:
            self._forward(self._deliver(conversation, user, _loopback_base(request), None))
        return web.json_response(self._conversation_info(request, conversation, -1), status=201)

    async def reconnect(self, request: web.Request) -> web.Response:
        conversation = self._authorized(request)
        watermark = _watermark(request.query.get("watermark"))
        return web.json_response(self._conversation_info(request, conversation, watermark))

    async def refresh_token(self, request: web.Request) -> web.Response:
        conversation = self.store.by_token(_bearer(request))
        if conversation is None:
            raise web.HTTPForbidden(text="unknown token")
        return web.json_response(
            {
                "conversationId": conversation.id,
                "token": conversation.token,
                "expires_in": TOKEN_LIFETIME_S,
            }
        )

    async def post_activity(self, request: web.Request) -> web.Response:
        conversation = self._authorized(request)
        activity = await read_activity_object(request)
        sender = activity.get("from")
        sender = sender if isinstance(sender, dict) else {}
        activity["from"] = {**sender, "id": str(sender.get("id") or "user"), "role": "user"}
        activity.update(
            channelId=CHANNEL_ID, recipient=dict(BOT_ACCOUNT), serviceUrl=_loopback_base(request)
        )
        activity.pop("timestamp", None)
        conversation.add(activity)
        streaming = conversation.streaming_now()
        if _is_stop(activity) and streaming:
            conversation.stopped_streams |= streaming
            logger.info("user stopped the stream conversation=%s", conversation.id)
        elif activity["type"] != "typing":
            sender, base = activity["from"], activity["serviceUrl"]
            self._forward(self._deliver(conversation, sender, base, activity))
        return web.json_response({"id": activity["id"]})

    async def get_activities(self, request: web.Request) -> web.Response:
        conversation = self._authorized(request)
        activities, watermark = conversation.after(_watermark(request.query.get("watermark")))
        return web.json_response({"activities": activities, "watermark": str(watermark)})

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        """The conversation's websocket: every activity after the watermark, as they arrive, in
        `{"activities": [...], "watermark": "n"}` frames. Web Chat pings with empty messages."""
        conversation = self._authorized(request, token=request.query.get("t", ""))
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

    def _forward(self, delivery: Coroutine[Any, Any, None]) -> None:
        """Run a `_deliver` in the background (closed with the service)."""
        task = asyncio.create_task(delivery)
        self._forwards.add(task)
        task.add_done_callback(self._forwards.discard)

    async def _deliver(
        self,
        conversation: Conversation,
        user: dict[str, Any],
        service_url: str,
        activity: Activity | None,
    ) -> None:
        """POST the activity to the bot, after telling it about a user it has not met yet."""
        async with conversation.turn_order:
            if user["id"] not in conversation.users:
                conversation.users.add(user["id"])
                joined = {
                    "type": "conversationUpdate",
                    "id": f"{conversation.id}|join-{len(conversation.users)}",
                    "channelId": CHANNEL_ID,
                    "serviceUrl": service_url,
                    "conversation": {"id": conversation.id},
                    "from": user,
                    "recipient": dict(BOT_ACCOUNT),
                    "membersAdded": [user],
                }
                await self._post_to_bot(conversation, joined)
            if activity is not None:
                await self._post_to_bot(conversation, activity)

    async def _post_to_bot(self, conversation: Conversation, activity: Activity) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = activity["serviceUrl"] + self._messages_path
        problem = None
        try:
            async with self._session.post(
                url, json=activity, timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
            ) as response:
                if response.status >= 300:
                    problem = f"HTTP {response.status}: {(await response.text())[:200]}"
        except (aiohttp.ClientError, TimeoutError) as error:
            problem = type(error).__name__
        if problem is not None:
            logger.warning(
                "local Direct Line could not deliver conversation=%s: %s", conversation.id, problem
            )
            note = {
                "type": "message",
                "from": dict(BOT_ACCOUNT),
                "text": f"(botloom could not take that message: {problem})",
            }
            conversation.add(note)

    def _conversation_info(
        self, request: web.Request, conversation: Conversation, watermark: int
    ) -> dict[str, Any]:
        scheme = "wss" if request.secure else "ws"
        stream_url = f"{scheme}://{request.host}/v3/directline/conversations/{conversation.id}/stream?t={conversation.token}"
        if watermark >= 0:
            stream_url += f"&watermark={watermark}"
        return {
            "conversationId": conversation.id,
            "token": conversation.token,
            "expires_in": TOKEN_LIFETIME_S,
            "streamUrl": stream_url,
        }

    def _authorized(self, request: web.Request, token: str | None = None) -> Conversation:
        conversation = self.store.get(request.match_info["conversation"])
        if conversation is None:
            raise web.HTTPNotFound(text="unknown conversation")
        given = token if token is not None else _bearer(request)
        if not secrets.compare_digest(
            given.encode("utf-8", "surrogateescape"), conversation.token.encode()
        ):
            raise web.HTTPForbidden(text="token does not match the conversation")
        return conversation


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
    return {"id": user_id, "name": str(user.get("name") or user_id), "role": "user"}


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
