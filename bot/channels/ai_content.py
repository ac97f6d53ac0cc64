"""What marks a model's reply: the AI label (one schema.org Message root entity, which also
carries citations where a reply has them) and, in Teams, the feedback buttons.

Teams refuses a message with two root entities, so everything that belongs to the schema.org
Message (the AI label, citation claims) goes into the one entity `ai_message_entity` builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from botbuilder.schema import Activity, Entity

SCHEMA_ORG_MESSAGE = "https://schema.org/Message"
AI_GENERATED = "AIGeneratedContent"
TEAMS = "msteams"


class MessageEntity(Entity):
    """The schema.org Message root entity. botbuilder's ``Entity`` drops undeclared properties
    when it serialises, so they are declared here; `citation` is left out when None."""

    _attribute_map: ClassVar[dict[str, dict[str, Any]]] = {
        "type": {"key": "type", "type": "str"},
        "at_type": {"key": "@type", "type": "str"},
        "at_context": {"key": "@context", "type": "str"},
        "at_id": {"key": "@id", "type": "str"},
        "additional_type": {"key": "additionalType", "type": "[str]"},
        "citation": {"key": "citation", "type": "[object]"},
    }

    def __init__(self, *, citation: list[dict[str, Any]] | None = None, **kwargs: object) -> None:
        super().__init__(type=SCHEMA_ORG_MESSAGE, **kwargs)
        self.at_type = "Message"
        self.at_context = "https://schema.org"
        self.at_id = ""
        self.additional_type = [AI_GENERATED]
        self.citation = citation


def ai_message_entity(citations: Sequence[dict[str, Any]] | None = None) -> MessageEntity:
    """The AI label entity; `citations` are schema.org Claim objects (``{"@type": "Claim",
    "position": 1, "appearance": {...}}``) for replies that cite sources."""
    return MessageEntity(citation=list(citations) if citations else None)


def mark_ai_reply(
    activity: Activity,
    *,
    channel_id: str | None,
    feedback: bool = True,
    citations: Sequence[dict[str, Any]] | None = None,
) -> Activity:
    """Label `activity` as AI generated (replacing any schema.org Message entity it had, so
    there is exactly one) and, in Teams when `feedback` is on, add the feedback buttons:
    ``channelData.feedbackLoop`` (``{"type": "default"}``) and ``feedbackLoopEnabled`` for older
    clients. Returns the activity."""
    kept = [e for e in activity.entities or [] if getattr(e, "type", None) != SCHEMA_ORG_MESSAGE]
    activity.entities = [*kept, ai_message_entity(citations)]
    if feedback and (channel_id or "").lower() == TEAMS:
        channel_data = dict(activity.channel_data or {})
        channel_data["feedbackLoop"] = {"type": "default"}
        channel_data["feedbackLoopEnabled"] = True
        activity.channel_data = channel_data
    return activity


def is_ai_reply(activity: dict[str, Any]) -> bool:
    """True for a serialised activity that carries the AI label."""
    return any(
        e.get("type") == SCHEMA_ORG_MESSAGE and AI_GENERATED in (e.get("additionalType") or [])
        for e in activity.get("entities") or []
    )
