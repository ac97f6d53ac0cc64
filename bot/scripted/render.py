"""Activities written the way a chatdown script writes them, for failures and the conversation."""

from __future__ import annotations

from botbuilder.schema import Activity, ActivityTypes

from bot.scripted.expectations import describe_attachment, invoke_status, invoke_text, normalize


def render(activity: Activity) -> str:
    """`Hello [Suggestions=a|b]`, `[Typing]`, `[ConversationUpdate=MembersAdded=Joe]`,
    `[InvokeResponse=200] text`, …"""
    if activity.type == ActivityTypes.typing:
        return "[Typing]"
    if activity.type == ActivityTypes.conversation_update:
        parts = []
        if activity.members_added:
            parts.append("MembersAdded=" + ",".join(_name(m) for m in activity.members_added))
        if activity.members_removed:
            parts.append("MembersRemoved=" + ",".join(_name(m) for m in activity.members_removed))
        return "[ConversationUpdate=" + " ".join(parts) + "]"
    if activity.type == ActivityTypes.invoke_response:
        text = invoke_text(activity)
        return f"[InvokeResponse={invoke_status(activity)}]" + (f" {text}" if text else "")
    if activity.type != ActivityTypes.message:
        return (
            f"[{_value(activity.type)}" + (f" name={activity.name}" if activity.name else "") + "]"
        )
    parts = [normalize(activity.text)] if activity.text else []
    parts += [describe_attachment(a) for a in activity.attachments or []]
    if activity.attachment_layout:
        parts.append(f"[AttachmentLayout={_value(activity.attachment_layout)}]")
    actions = activity.suggested_actions.actions if activity.suggested_actions else []
    if actions:
        parts.append("[Suggestions=" + "|".join(str(a.title) for a in actions) + "]")
    return "\n".join(parts) if parts else "(an empty message)"


def said(speaker: str, text: str) -> str:
    """`speaker: text`, later lines of a multi-line text indented under the first."""
    prefix = f"{speaker}: "
    return ("\n" + " " * len(prefix)).join(f"{prefix}{text}".split("\n"))


def _value(text: object) -> str:
    """botbuilder's str enums (ActivityTypes.event) as their value ("event")."""
    return str(getattr(text, "value", text))


def _name(account: object) -> str:
    return str(getattr(account, "name", None) or getattr(account, "id", "?"))
