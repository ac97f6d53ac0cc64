"""GET /chat: the official Web Chat UI, talking to this bot over botloom's own Direct Line.

The UI is the npm package `botframework-webchat`, pinned in package.json / package-lock.json
next to this file and installed into ./node_modules by `make setup` (no CDN: it works offline).
Without it, /chat explains how to get it instead of failing.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

HERE = Path(__file__).parent
PAGE = HERE / "chat.html"
BUNDLE = HERE / "node_modules" / "botframework-webchat" / "dist" / "webchat.js"

MISSING_BUNDLE = (
    "The chat page needs the Web Chat UI, which is installed with npm. Run <code>make setup</code> "
    "(it installs it when npm is present) or <code>npm ci --prefix bot/channels/webchat</code>, "
    "then reload."
)
NOT_ANONYMOUS = (
    "The local chat page works in anonymous mode only (no MicrosoftAppId): it reaches the bot "
    "through botloom's own Direct Line, which has no channel tokens. Use Web Chat through Azure "
    "Bot Service, or start botloom without an app id."
)


class ChatPage:
    """Handlers for /chat and its script; `bundle` is Web Chat's dist/webchat.js."""

    def __init__(self, bundle: Path = BUNDLE, *, enabled: bool = True) -> None:
        self._bundle = bundle
        self._enabled = enabled

    async def page(self, request: web.Request) -> web.StreamResponse:
        if not self._enabled:
            return _notice(NOT_ANONYMOUS, status=404)
        if not self._bundle.is_file():
            return _notice(MISSING_BUNDLE, status=503)
        return web.FileResponse(PAGE, headers={"Cache-Control": "no-cache"})

    async def script(self, request: web.Request) -> web.StreamResponse:
        if not self._enabled or not self._bundle.is_file():
            raise web.HTTPNotFound(text="Web Chat is not installed")
        return web.FileResponse(self._bundle, headers={"Content-Type": "text/javascript"})


def _notice(html: str, *, status: int) -> web.Response:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>botloom chat</title>'
        f"</head><body><h1>botloom chat</h1><p>{html}</p></body></html>"
    )
    return web.Response(text=body, status=status, content_type="text/html")
