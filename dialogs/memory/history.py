"""The conversation's history and the rolling summary of its older turns, in conversation state."""

from __future__ import annotations

from botbuilder.core import ConversationState, TurnContext

from dialogs.memory.summary import bounded, summary_line
from models import ChatMessage

MAX_STORED_MESSAGES = 200  # bound on stored history; the prompt uses what fits the token budget


class ConversationMemory:
    """Reads and writes the chat history of the turn's conversation (oldest first).

    Messages folded into the summary (`fold`) stay in the history but leave the prompt's window
    (`recent`)."""

    def __init__(self, conversation_state: ConversationState) -> None:
        self._history = conversation_state.create_property("history")
        self._summary = conversation_state.create_property("summary")

    async def history(self, turn_context: TurnContext) -> list[ChatMessage]:
        stored = await self._history.get(turn_context, list)
        return [ChatMessage(role=item["role"], content=item["content"]) for item in stored]

    async def recent(self, turn_context: TurnContext) -> list[ChatMessage]:
        """The messages not folded into the summary yet, oldest first."""
        stored = await self._history.get(turn_context, list)
        return [
            ChatMessage(role=item["role"], content=item["content"])
            for item in stored
            if not item.get("folded")
        ]

    async def append(self, turn_context: TurnContext, *messages: ChatMessage) -> None:
        stored = await self._history.get(turn_context, list)
        stored.extend({"role": m.role, "content": m.content} for m in messages)
        del stored[:-MAX_STORED_MESSAGES]
        await self._history.set(turn_context, stored)

    async def summary(self, turn_context: TurnContext) -> list[str]:
        """The summary's lines (see dialogs/memory/summary.py), oldest first."""
        stored = await self._summary.get(turn_context, list)
        return [str(line) for line in stored] if isinstance(stored, list) else []

    async def fold(self, turn_context: TurnContext, count: int) -> None:
        """Fold the `count` oldest recent messages into the summary."""
        stored = await self._history.get(turn_context, list)
        folded: list[ChatMessage] = []
        for item in stored:
            if len(folded) >= count:
                break
            if not item.get("folded"):
                item["folded"] = True
                folded.append(ChatMessage(role=item["role"], content=item["content"]))
        lines = await self.summary(turn_context)
        lines.extend(line for m in folded if (line := summary_line(m)) is not None)
        await self._history.set(turn_context, stored)
        await self._summary.set(turn_context, bounded(lines))

    async def set_summary(self, turn_context: TurnContext, lines: list[str]) -> None:
        await self._summary.set(turn_context, lines)

    async def clear(self, turn_context: TurnContext) -> None:
        await self._history.set(turn_context, [])
        await self._summary.set(turn_context, [])
