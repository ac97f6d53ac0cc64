"""Teams conversations: who is addressed in a group chat or channel, and the feedback invoke."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botbuilder.schema import Activity

GROUP_CONVERSATIONS = ("groupChat", "channel")
FEEDBACK_INVOKE = "message/submitAction"


def is_group_conversation(activity: Activity) -> bool:
    """A Teams group chat or channel (where the bot answers only when it is @mentioned)."""
    conversation = activity.conversation
    return conversation is not None and conversation.conversation_type in GROUP_CONVERSATIONS


def mentions_bot(activity: Activity) -> bool:
    """True when one of the activity's mention entities names the bot (its recipient)."""
    if activity.recipient is None:
        return False
    for entity in activity.entities or []:
        if (entity.type or "").lower() != "mention":
            continue
        mentioned = (entity.additional_properties or {}).get("mentioned") or {}
        if isinstance(mentioned, dict) and mentioned.get("id") == activity.recipient.id:
            return True
    return False


def addressed_to_bot(activity: Activity) -> bool:
    """False for a group chat or channel message that does not @mention the bot: it gets no
    answer of any kind (not even a rate-limit notice)."""
    return not is_group_conversation(activity) or mentions_bot(activity)


@dataclass(frozen=True)
class FeedbackClick:
    """A click on Teams' thumbs up / down (and the text typed in its form)."""

    reaction: str
    text: str


def feedback_click(activity: Activity) -> FeedbackClick | None:
    """The feedback in a ``message/submitAction`` invoke with ``actionName: "feedback"``, or None
    when the invoke is something else. Tolerates a malformed ``feedback`` string."""
    if activity.name != FEEDBACK_INVOKE or not isinstance(activity.value, dict):
        return None
    if activity.value.get("actionName") != "feedback":
        return None
    value: Any = activity.value.get("actionValue") or {}
    if not isinstance(value, dict):
        return None
    reaction = value.get("reaction")
    if reaction not in ("like", "dislike"):
        return None
    feedback = value.get("feedback")
    text = ""
    if isinstance(feedback, str):
        try:
            parsed = json.loads(feedback)
        except ValueError:
            parsed = feedback
        feedback = parsed
    if isinstance(feedback, dict):
        text = str(feedback.get("feedbackText") or "")
    elif isinstance(feedback, str):
        text = feedback
    return FeedbackClick(reaction, text[:4000])
