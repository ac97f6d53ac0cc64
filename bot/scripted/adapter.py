"""A BotAdapter for replaying scripts: it collects every activity a turn sends, typing included."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from botbuilder.core import BotAdapter, TurnContext
from botbuilder.schema import Activity, ConversationReference, ResourceResponse

from bot.turns.error_handler import on_turn_error


class ScriptAdapter(BotAdapter):
    """Runs turns in-process; `process` returns what the bot sent during that turn.

    Edits (`update_activity`) change the collected activity in place and deletions remove it, so
    a script sees the final state of a message that was streamed or corrected. Exceptions a turn
    raises are handled by botloom's `on_turn_error`, as in production, and kept in `errors`.
    """

    def __init__(self) -> None:
        super().__init__(on_turn_error=self._turn_failed)
        self.errors: list[Exception] = []
        self._sent: list[Activity] = []
        self._count = 0

    async def process(
        self, activity: Activity, logic: Callable[[TurnContext], Awaitable]
    ) -> list[Activity]:
        self._sent = []
        await self.run_pipeline(TurnContext(self, activity), logic)
        return self._sent

    async def send_activities(
        self, context: TurnContext, activities: list[Activity]
    ) -> list[ResourceResponse]:
        responses = []
        for activity in activities:
            self._count += 1
            activity.id = activity.id or f"reply-{self._count}"
            self._sent.append(activity)
            responses.append(ResourceResponse(id=activity.id))
        return responses

    async def update_activity(self, context: TurnContext, activity: Activity) -> ResourceResponse:
        for index, sent in enumerate(self._sent):
            if sent.id == activity.id:
                self._sent[index] = activity
        return ResourceResponse(id=activity.id)

    async def delete_activity(self, context: TurnContext, reference: ConversationReference) -> None:
        self._sent = [sent for sent in self._sent if sent.id != reference.activity_id]

    async def _turn_failed(self, context: TurnContext, error: Exception) -> None:
        self.errors.append(error)
        await on_turn_error(context, error)
