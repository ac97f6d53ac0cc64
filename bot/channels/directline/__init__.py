"""A local Direct Line 3.0 service and chat page, so Web Chat can talk to this bot in a browser
without Azure or the Emulator: webchat_api.py is Web Chat's side, connector_api.py the bot's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from bot.channels.directline.connector_api import BotConnectorApi
from bot.channels.directline.store import ConversationStore
from bot.channels.directline.uploads import Uploads
from bot.channels.directline.webchat_api import LocalDirectLine
from bot.channels.webchat.page import BUNDLE, ChatPage
from bot.security.local_secret import LocalSecret
from bot.security.origin_guard import OriginGuard

DIRECTLINE = web.AppKey("directline", LocalDirectLine)

__all__ = ["DIRECTLINE", "LocalDirectLine", "add_directline_routes"]


def add_directline_routes(
    app: web.Application,
    *,
    anonymous: bool,
    messages_path: str = "/api/messages",
    webchat_bundle: Path = BUNDLE,
    store: ConversationStore | None = None,
    guard: OriginGuard | None = None,
    secret: LocalSecret | None = None,
    max_upload_bytes: int = 25 * 1024 * 1024,
    max_body_bytes: int = 1024 * 1024,
) -> None:
    """Serve the chat page on GET /chat and, in anonymous mode only, the Direct Line that it
    uses (/v3/directline/...) and the connector routes the bot replies to (/v3/conversations/...).

    With an app id the bot only accepts channel tokens, which a local Direct Line cannot issue,
    so /chat then explains that instead. Every Direct Line and connector route goes through
    `guard` (JSON bodies, this server's Host, the page's own Origin: bot/security/origin_guard.py).
    `secret` is the process's (bot/security/local_secret.py): the connector routes require it,
    and the bot's connector client must be given the same one. Web Chat's uploads (up to
    `max_upload_bytes` a file, the activity in them up to `max_body_bytes`) are kept in this
    process and served to the bot (uploads.py).
    """
    page = ChatPage(webchat_bundle, enabled=anonymous)
    app.router.add_get("/chat", page.page)
    app.router.add_get("/chat/webchat.js", page.script)
    if not anonymous:
        return
    service = LocalDirectLine(store, messages_path, secret)
    app[DIRECTLINE] = service
    app.cleanup_ctx.append(_lifetime)
    app.on_shutdown.append(_close_sockets)
    connector = BotConnectorApi(service.store, service.secret)
    wrap = (guard or OriginGuard()).wrap
    routes = [
        ("POST", "/v3/directline/tokens/generate", service.generate_token),
        ("POST", "/v3/directline/conversations", service.start_conversation),
        ("GET", "/v3/directline/conversations/{conversation}", service.reconnect),
        ("POST", "/v3/directline/tokens/refresh", service.refresh_token),
        ("POST", "/v3/directline/conversations/{conversation}/activities", service.post_activity),
        ("GET", "/v3/directline/conversations/{conversation}/activities", service.get_activities),
        ("GET", "/v3/directline/conversations/{conversation}/stream", service.stream),
        ("POST", "/v3/conversations/{conversation}/activities", connector.bot_sends),
        ("POST", "/v3/conversations/{conversation}/activities/{reply_to}", connector.bot_sends),
        ("PUT", "/v3/conversations/{conversation}/activities/{activity}", connector.bot_updates),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, wrap(handler))
    uploads = Uploads(service, max_file_bytes=max_upload_bytes, max_activity_bytes=max_body_bytes)
    upload_path = "/v3/directline/conversations/{conversation}/upload"
    app.router.add_post(upload_path, wrap(uploads.upload, multipart=True))
    app.router.add_get("/v3/directline/files/{file}/{name}", wrap(uploads.file))


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[DIRECTLINE].close()


async def _close_sockets(app: web.Application) -> None:
    """Websockets would hold up shutdown: close them first."""
    await app[DIRECTLINE].close_sockets()
