"""Inbound activities as a channel (the Emulator, Teams) would POST them."""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count(1)


def message(
    text: str | None,
    *,
    service_url: str,
    conversation: str = "conv-1",
    user: str = "user-1",
    channel: str = "emulator",
    **extra: Any,
) -> dict[str, Any]:
    activity: dict[str, Any] = {
        "type": "message",
        "id": f"in-{next(_ids)}",
        "channelId": channel,
        "serviceUrl": service_url,
        "from": {"id": user, "name": "User", "role": "user"},
        "recipient": {"id": "bot-1", "name": "botloom", "role": "bot"},
        "conversation": {"id": conversation},
        "locale": "en-US",
    }
    if text is not None:
        activity["text"] = text
    activity.update(extra)
    return activity


def conversation_update(
    members_added: list[str],
    *,
    service_url: str,
    conversation: str = "conv-1",
    channel: str = "emulator",
) -> dict[str, Any]:
    activity = message(None, service_url=service_url, conversation=conversation, channel=channel)
    activity["type"] = "conversationUpdate"
    activity["membersAdded"] = [{"id": member, "name": member} for member in members_added]
    return activity
