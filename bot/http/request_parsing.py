"""Reading an inbound activity: every client mistake becomes a 4xx with a short reason.

Beyond the body size (413), an activity is bounded where the bot keeps or works through what it
carries (400 past a bound, with the field and the bound in the reason):

- ids (MAX_ID_BYTES, 512 UTF-8 bytes): the activity's id and replyToId, channelId,
  conversation.id, from.id, from.aadObjectId, recipient.id, and each reaction's type. They become
  storage keys (PostgreSQL indexes an entry of at most 2,704 bytes; the inbox's index holds the
  conversation key and the activity id together) and cache entries. Real ids are ASCII and far
  shorter: Teams' longest, a personal chat's conversation id (``a:1…``) and a user's ``29:1…``
  id, are about 100 to 200 characters; Direct Line's are under 50.
- lists the bot works through item by item (MAX_ITEMS): membersAdded and membersRemoved 256 (a
  Teams group chat has at most 250 members), reactionsAdded and reactionsRemoved 16 (a channel
  sends one reaction at a time), entities 64 (a mention each, client info), attachments 32.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from botbuilder.schema import Activity

MAX_ID_BYTES = 512

MAX_ITEMS = {
    "membersAdded": 256,
    "membersRemoved": 256,
    "reactionsAdded": 16,
    "reactionsRemoved": 16,
    "entities": 64,
    "attachments": 32,
}


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
    check_bounds(data)


def check_bounds(data: dict[str, Any]) -> None:
    """Ids no longer than MAX_ID_BYTES, lists no longer than MAX_ITEMS (400 past either)."""
    ids = {
        "id": data.get("id"),
        "replyToId": data.get("replyToId"),
        "channelId": data.get("channelId"),
        "conversation.id": data["conversation"].get("id"),
        "from.id": data["from"].get("id"),
        "from.aadObjectId": data["from"].get("aadObjectId"),
        "recipient.id": (data.get("recipient") or {}).get("id"),
    }
    for name, value in ids.items():
        if isinstance(value, str) and len(value.encode(errors="replace")) > MAX_ID_BYTES:
            raise InvalidActivity(f"activity.{name} is longer than {MAX_ID_BYTES} bytes")
    for name, most in MAX_ITEMS.items():
        items = data.get(name)
        if isinstance(items, list) and len(items) > most:
            raise InvalidActivity(f"activity.{name} has more than {most} items")
    for name in ("reactionsAdded", "reactionsRemoved"):
        reactions = data.get(name)
        for reaction in reactions if isinstance(reactions, list) else ():
            kind = reaction.get("type") if isinstance(reaction, dict) else None
            if isinstance(kind, str) and len(kind.encode(errors="replace")) > MAX_ID_BYTES:
                raise InvalidActivity(f"activity.{name}[].type is longer than {MAX_ID_BYTES} bytes")


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False
