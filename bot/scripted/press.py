"""`[Press=Title]`: a press of an Adaptive Card's button as the channel sends it.

An `Action.Execute` button (botloom's cards in Teams) sends the invoke `adaptiveCard/action`
whose value carries the button's verb and data; an `Action.Submit` button (Web Chat, the
Emulator) sends a message without text whose `value` is the button's data.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

from botbuilder.schema import Activity, ActivityTypes

from bot.scripted.expectations import plain
from bot.tools.cards import CARD_TYPE

BUTTONS = ("Action.Execute", "Action.Submit")


def latest_card(replies: Sequence[Activity], previous: Any = None) -> Any:
    """The last Adaptive Card among `replies`' attachments, else `previous`."""
    for reply in replies:
        for attachment in reply.attachments or []:
            if attachment.content_type == CARD_TYPE:
                previous = plain(attachment.content)
    return previous


def button(card: Any, title: str) -> dict[str, Any] | None:
    """The Action.Execute or Action.Submit titled `title` anywhere in `card`, else None."""
    return next((b for b in _buttons(card) if b.get("title") == title), None)


def titles(card: Any) -> list[str]:
    return [str(b.get("title")) for b in _buttons(card)]


def pressed(frame: Activity, action: dict[str, Any]) -> Activity:
    """`frame` (sender, conversation, id) carrying the press of `action`."""
    activity = copy.copy(frame)
    data = action.get("data", {})
    if action.get("type") == "Action.Execute":
        activity.type = ActivityTypes.invoke
        activity.name = "adaptiveCard/action"
        activity.value = {
            "action": {"type": "Action.Execute", "verb": action.get("verb"), "data": data}
        }
    else:
        activity.type = ActivityTypes.message
        activity.value = copy.deepcopy(data)
    activity.text = None
    return activity


def _buttons(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, list):
        for item in node:
            yield from _buttons(item)
    elif isinstance(node, dict):
        if node.get("type") in BUTTONS:
            yield node
        for value in node.values():
            yield from _buttons(value)
