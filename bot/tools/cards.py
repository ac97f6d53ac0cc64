"""The approval question as each channel can answer it: an Adaptive Card with `Action.Execute`
in Teams (the invoke's answer then replaces the card with the outcome), with `Action.Submit` in
Web Chat and the Emulator (which cannot press Action.Execute), plain text with a y/n question in
the terminal."""

from __future__ import annotations

import time
from typing import Any

from botbuilder.schema import Activity, ActivityTypes, Attachment

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
DATA_KEY = "botloom_tool_approval"
VERB = "botloom.tool.decide"


def plain_words(description: str, arguments: dict[str, Any], schema: dict[str, Any]) -> str:
    """'Cancel an order that has not shipped yet: order id A-20931, reason "wrong size".'"""
    titles = {k: (v.get("title") or k).lower() for k, v in schema.get("properties", {}).items()}
    parts = []
    for name, value in arguments.items():
        shown = f'"{value}"' if isinstance(value, str) and " " in value else str(value)
        parts.append(f"{titles.get(name, name.replace('_', ' '))} {shown}")
    return f"{description.rstrip('.')}: {', '.join(parts)}." if parts else description


def approval_activity(record: dict[str, Any], channel_id: str | None) -> Activity:
    """The question for `record` (a pending approval) on the turn's channel."""
    expires = time.strftime("%H:%M UTC", time.gmtime(record["expires"]))
    if channel_id == "console":
        return Activity(
            type=ActivityTypes.message,
            text=f"I'd like to run {record['tool']} ({record['server']}): {record['summary']}\n"
            f"Approve? (y/n, until {expires})",
        )
    action = "Action.Execute" if channel_id == "msteams" else "Action.Submit"

    def button(title: str, decision: str, style: str) -> dict[str, Any]:
        data = {DATA_KEY: record["id"], "decision": decision}
        out = {"type": action, "title": title, "style": style, "data": data}
        return {**out, "verb": VERB} if action == "Action.Execute" else out

    card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": "Approve this action?", "weight": "Bolder"},
            {"type": "TextBlock", "text": record["summary"], "wrap": True},
            {
                "type": "FactSet",
                "facts": [{"title": "Tool", "value": f"{record['tool']} ({record['server']})"}]
                + [{"title": k, "value": str(v)} for k, v in record["arguments"].items()],
            },
            {"type": "TextBlock", "text": f"Expires {expires}", "isSubtle": True, "size": "Small"},
        ],
        "actions": [
            button("Approve", "approve", "positive"),
            button("Reject", "reject", "destructive"),
        ],
    }
    return Activity(
        type=ActivityTypes.message,
        text=f"Approve? {record['summary']}",
        attachments=[Attachment(content_type=CARD_TYPE, content=card)],
    )


def outcome_card(record: dict[str, Any], text: str) -> dict[str, Any]:
    """The card that replaces the question in Teams once it is decided."""
    return {
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": record.get("summary", ""),
                "wrap": True,
                "isSubtle": True,
            },
            {"type": "TextBlock", "text": text, "wrap": True},
        ],
    }
