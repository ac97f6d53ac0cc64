"""Reading an inbound activity: every client mistake becomes a 4xx with a short reason."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from botbuilder.schema import Activity


class InvalidActivity(web.HTTPBadRequest):
    """400 with a short plain-text reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(text=reason, reason="Bad Request")


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def read_activity(request: web.Request) -> tuple[Activity, dict[str, Any]]:
    """Parse and check the body of POST /api/messages: the activity and the JSON it came from
    (msrest's `serialize()` would drop what it does not model, such as a Teams mention's text).

    Raises 415 for a non-JSON content type, 413 above the app's body limit, and 400 (with a
    reason) for an empty, non-UTF-8 or malformed body, a non-object, or a missing required field.
    """
    if not _is_json(request.content_type):
        raise web.HTTPUnsupportedMediaType(text="Content-Type must be application/json")
    body = await request.read()  # raises 413 above client_max_size
    if not body.strip():
        raise InvalidActivity("empty body")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidActivity("body is not valid UTF-8 JSON") from None
    check_activity_shape(data)
    try:
        return Activity().deserialize(data), data
    except Exception:  # msrest raises several types for ill-typed fields
        raise InvalidActivity("activity has fields of the wrong type") from None


def check_activity_shape(data: Any) -> None:
    """What a turn needs: type, channelId, conversation.id, from.id and an http(s) serviceUrl."""
    if not isinstance(data, dict):
        raise InvalidActivity("activity must be a JSON object")
    if not isinstance(data.get("type"), str) or not data["type"]:
        raise InvalidActivity("activity.type must be a non-empty string")
    if not _non_empty_str(data.get("channelId")):
        raise InvalidActivity("activity.channelId must be a non-empty string")
    conversation = data.get("conversation")
    if not isinstance(conversation, dict) or not _non_empty_str(conversation.get("id")):
        raise InvalidActivity("activity.conversation.id must be a non-empty string")
    sender = data.get("from")
    if not isinstance(sender, dict) or not _non_empty_str(sender.get("id")):
        raise InvalidActivity("activity.from.id must be a non-empty string")
    recipient = data.get("recipient")
    if recipient is not None and not isinstance(recipient, dict):
        raise InvalidActivity("activity.recipient must be an object")
    service_url = data.get("serviceUrl")
    if not _non_empty_str(service_url) or not _is_http_url(service_url):
        raise InvalidActivity("activity.serviceUrl must be an http(s) URL")


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False
