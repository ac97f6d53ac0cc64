"""The answer to a bug in a handler: a short 500 and a log line, never a traceback."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

logger = logging.getLogger(__name__)


@web.middleware
async def plain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A bug answers a short 500, never a traceback (aiohttp's debug mode would show one)."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        logger.exception("unhandled error in %s %s", request.method, request.path)
        return web.Response(status=500, text="internal error")
