"""What happens when a turn fails: log it, tell the user, and show the trace in a local Emulator.

The trace (the traceback, redacted) is posted only to an Emulator on this machine: channel
`emulator`, a loopback serviceUrl, and a normal delivery. An `expectReplies` request gets its
replies in the HTTP response, to whoever sent it, wherever its serviceUrl points: it gets the
apology and never a trace.
"""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime
from urllib.parse import urlsplit

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ActivityTypes, DeliveryModes

from bot.redaction import redact
from bot.security.service_urls import is_loopback_host

logger = logging.getLogger(__name__)

SORRY_TEXT = "Sorry, something went wrong on my side. Please try again."


async def on_turn_error(turn_context: TurnContext, error: Exception) -> None:
    """The adapter's `on_turn_error`: never raises, whatever the connector does."""
    activity = turn_context.activity
    conversation_id = activity.conversation.id if activity.conversation else None
    logger.error(
        "turn failed conversation=%s error=%s",
        conversation_id,
        type(error).__name__,
        exc_info=(type(error), error, error.__traceback__),
    )
    try:
        await turn_context.send_activity(SORRY_TEXT)
        if _is_local_emulator(activity):
            await turn_context.send_activity(
                Activity(
                    type=ActivityTypes.trace,
                    timestamp=datetime.now(UTC),
                    name="on_turn_error Trace",
                    label="TurnError",
                    value=redact("".join(traceback.format_exception(error))),
                    value_type="https://www.botframework.com/schemas/error",
                )
            )
    except Exception:
        logger.exception("could not tell the user about the error conversation=%s", conversation_id)


def _is_local_emulator(activity: Activity) -> bool:
    """Tracebacks go to an Emulator on this machine only: anyone may claim channelId emulator,
    but only a local client is answered on a loopback serviceUrl, and only when the replies go
    to that serviceUrl (expectReplies answers the HTTP request instead)."""
    if activity.delivery_mode == DeliveryModes.expect_replies:
        return False
    try:
        host = urlsplit(activity.service_url or "").hostname
    except ValueError:
        return False
    return activity.channel_id == "emulator" and host is not None and is_loopback_host(host)
