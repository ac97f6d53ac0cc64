"""Inbox entries as turns: an acknowledged activity and how it was authenticated, stored as JSON
and rebuilt on whichever replica runs its turn."""

from __future__ import annotations

import json
from typing import Any

from botbuilder.core import Bot, TurnContext
from botbuilder.schema import Activity, ActivityTypes
from botframework.connector.auth import BotFrameworkAuthentication, ClaimsIdentity
from botframework.connector.auth.authenticate_request_result import AuthenticateRequestResult

from bot.channels.connector_client import RetryingCloudAdapter
from bot.storage import InboxEntry
from bot.turns.identity import as_identity
from bot.turns.transcripts import NOTICE_ONLY

ONE_MOMENT = "One moment, please: I'm still answering your previous message. This one is next."


def entry_body(
    activity: dict[str, Any], auth: AuthenticateRequestResult, user: str | None = None
) -> str:
    """What the inbox keeps: the activity as it came (JSON), the verified claims the turn's
    replies need (the token itself is not kept), and the sender's vouched identity
    (bot/turns/identity.py; None when no one vouches)."""
    identity = auth.claims_identity
    return json.dumps(
        {
            "activity": activity,
            "user": user,
            "claims": identity.claims if identity is not None else {},
            "authenticated": bool(identity is not None and identity.is_authenticated),
            "authentication_type": getattr(identity, "authentication_type", None),
            "audience": auth.audience,
            "caller_id": auth.caller_id,
        }
    )


def restore(
    body: str, authentication: BotFrameworkAuthentication
) -> tuple[Activity, AuthenticateRequestResult]:
    """The activity and an authentication result equal to the one the endpoint got."""
    stored: dict[str, Any] = json.loads(body)
    identity = ClaimsIdentity(
        stored["claims"], stored["authenticated"], stored["authentication_type"]
    )
    auth = AuthenticateRequestResult()
    auth.claims_identity = identity
    auth.audience = stored["audience"]
    auth.caller_id = stored["caller_id"]
    auth.connector_factory = authentication.create_connector_factory(identity)
    return Activity().deserialize(stored["activity"]), auth


def vouched_user(body: str) -> str | None:
    """The sender's vouched identity kept with an entry (None: none, or an older entry)."""
    user = json.loads(body).get("user")
    return user if isinstance(user, str) and user else None


class InboxTurns:
    """Runs an inbox entry through the adapter and the bot, as the endpoint would have."""

    def __init__(self, adapter: RetryingCloudAdapter, bot: Bot) -> None:
        self._adapter = adapter
        self._bot = bot

    async def run(self, entry: InboxEntry) -> None:
        activity, auth = restore(entry.body, self._adapter.bot_framework_authentication)
        logic = as_identity(vouched_user(entry.body), self._bot.on_turn)
        await self._adapter.process_activity(auth, activity, logic)

    async def say_one_moment(self, entry: InboxEntry) -> None:
        activity, auth = restore(entry.body, self._adapter.bot_framework_authentication)
        if activity.type == ActivityTypes.message:
            await self._adapter.process_activity(auth, activity, tell_one_moment)


async def tell_one_moment(turn_context: TurnContext) -> None:
    """A notice over a waiting message: the message itself is recorded by its own turn."""
    turn_context.turn_state[NOTICE_ONLY] = True
    await turn_context.send_activity(ONE_MOMENT)
