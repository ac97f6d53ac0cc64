"""Who sent a turn, as far as the channel vouches for it: user memory and the per-user rate limit
key on this, never on a `from.id` that the client chose.

Decided once per request, where it is authenticated (bot/http/messages.py), kept with the inbox
entry, and handed to the dialogs in the TurnContext's turn_state under USER_IDENTITY_KEY
(dialogs/memory/user_store.py) as `<channel>/users/<id>`:

- Teams: the Entra object id (`aadObjectId`) on a request whose channel token was validated and
  names its service URL: `msteams/users/aad:<id>`. Anonymous mode validates nothing, and an
  Emulator token names no service URL: neither vouches.
- The local Direct Line: the user id it chose and bound into the conversation's token (it refuses
  activities from any other id), on a request that carries this process's secret
  (bot/security/local_secret.py): `directline/users/<id>`.
- The terminal (`botloom chat`): the OS user, `console/users/<name>` (bot/console.py).
- Anything else (the Emulator, Web Chat through another Direct Line, other channels): no one.
  Memory is then the conversation's, and the rate limit counts the conversation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from botbuilder.core import TurnContext
from botbuilder.schema import Activity
from botframework.connector.auth import AuthenticationConstants, ClaimsIdentity

from dialogs.memory.user_store import USER_IDENTITY_KEY

Logic = Callable[[TurnContext], Awaitable[object]]

TEAMS = "msteams"
LOCAL_DIRECTLINE = "directline"


def vouched_identity(
    activity: Activity,
    claims_identity: ClaimsIdentity | None,
    *,
    anonymous: bool,
    from_local_directline: bool = False,
) -> str | None:
    """The sender's identity as `<channel>/users/<id>`, or None when no one vouches for it.

    `from_local_directline`: the request carried this process's secret, so the local Direct Line
    sent it and checked its `from.id` against the conversation's token."""
    sender = activity.from_property
    channel = (activity.channel_id or "").lower()
    if sender is None:
        return None
    if from_local_directline:
        return f"{LOCAL_DIRECTLINE}/users/{sender.id}" if channel == LOCAL_DIRECTLINE else None
    aad = getattr(sender, "aad_object_id", None)
    if channel == TEAMS and aad and not anonymous and _channel_token(claims_identity):
        return f"{TEAMS}/users/aad:{aad}"
    return None


def _channel_token(identity: ClaimsIdentity | None) -> bool:
    """A validated channel token: authenticated, not anonymous, naming its service URL."""
    if identity is None or not identity.is_authenticated:
        return False
    if identity.authentication_type == AuthenticationConstants.ANONYMOUS_AUTH_TYPE:
        return False
    return bool((identity.claims or {}).get(AuthenticationConstants.SERVICE_URL_CLAIM))


def rate_key(activity: Activity, identity: str | None) -> str:
    """What the per-user rate limit counts: the vouched identity, else the conversation."""
    if identity:
        return identity
    conversation = activity.conversation.id if activity.conversation else ""
    return f"{activity.channel_id}/conversations/{conversation}"


def as_identity(identity: str | None, logic: Logic) -> Logic:
    """`logic` with the turn's identity in turn_state (None: no one vouches for the sender)."""

    async def run(turn_context: TurnContext) -> object:
        turn_context.turn_state[USER_IDENTITY_KEY] = identity
        return await logic(turn_context)

    return run
