"""Presses of an approval card's buttons: `Action.Submit` arrives as a message whose `value`
holds the card's data (Web Chat, the Emulator), `Action.Execute` as the invoke
`adaptiveCard/action` (Teams), whose answer replaces the card with the outcome."""

from __future__ import annotations

from typing import Any

from botbuilder.core import InvokeResponse, TurnContext

from bot.tools.cards import CARD_TYPE, DATA_KEY, outcome_card
from bot.tools.runner import McpToolRunner, caller_of
from dialogs.tools.api import ToolOutcome


def approval_data(value: object) -> tuple[str, bool] | None:
    """(approval id, approve?) from a card's data, else None."""
    if not isinstance(value, dict) or not isinstance(value.get(DATA_KEY), str):
        return None
    if value.get("decision") not in ("approve", "reject"):
        return None
    return value[DATA_KEY], value["decision"] == "approve"


def outcome_text(result: str, record: dict[str, Any], outcome: ToolOutcome | None) -> str:
    tool = record.get("tool", "the tool")
    source = f"\n\nTool: {record.get('server')}/{tool}"
    if result == "run" and outcome is not None:
        if outcome.ok:
            return f"Done. {outcome.text}{source}"
        return f"I could not run {tool}: {outcome.text}.{source}"
    return {
        "rejected": f"OK, I did not run {tool}.",
        "done": f"That was already decided ({record.get('state')}); nothing more was run.",
        "expired": f"This approval expired, so {tool} was not run. Ask me again if needed.",
        "not_yours": "Only the person who asked for this can approve or reject it.",
        "unknown": "I can't find this approval any more; nothing was run.",
    }.get(result, "Nothing was run.")


class ApprovalClicks:
    def __init__(self, runner: McpToolRunner) -> None:
        self._runner = runner

    async def on_message(self, turn_context: TurnContext) -> bool:
        """Handle an Action.Submit press; False when the message is not one."""
        data = approval_data(turn_context.activity.value)
        if data is None:
            return False
        _, user = caller_of(turn_context)
        result, record, outcome = await self._runner.decide(data[0], user, data[1])
        await turn_context.send_activity(outcome_text(result, record, outcome))
        return True

    async def on_invoke(self, turn_context: TurnContext) -> InvokeResponse | None:
        """Answer an Action.Execute press with the outcome card; None for other invokes."""
        activity = turn_context.activity
        if activity.name != "adaptiveCard/action" or not isinstance(activity.value, dict):
            return None
        action = activity.value.get("action") or {}
        data = approval_data(action.get("data"))
        if data is None:
            return None
        _, user = caller_of(turn_context)
        result, record, outcome = await self._runner.decide(data[0], user, data[1])
        text = outcome_text(result, record, outcome)
        if result == "not_yours":  # the asker's card stays as it is
            body = {"statusCode": 200, "type": "application/vnd.microsoft.activity.message"}
            return InvokeResponse(status=200, body={**body, "value": text})
        card = outcome_card(record, text)
        return InvokeResponse(
            status=200, body={"statusCode": 200, "type": CARD_TYPE, "value": card}
        )
