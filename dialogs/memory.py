"""The conversation's history, kept in conversation state."""

from __future__ import annotations

from botbuilder.core import ConversationState, TurnContext

from models import ChatMessage

MAX_STORED_MESSAGES = 200  # bound on stored history; the prompt uses what fits the token budget


class ConversationMemory:
    """Reads and writes the chat history of the turn's conversation (oldest first)."""

    def __init__(self, conversation_state: ConversationState) -> None:
        self._history = conversation_state.create_property("history")

    async def history(self, turn_context: TurnContext) -> list[ChatMessage]:
        stored = await self._history.get(turn_context, list)
        return [ChatMessage(role=item["role"], content=item["content"]) for item in stored]

    async def append(self, turn_context: TurnContext, *messages: ChatMessage) -> None:
        stored = await self._history.get(turn_context, list)
        stored.extend({"role": m.role, "content": m.content} for m in messages)
        del stored[:-MAX_STORED_MESSAGES]
        await self._history.set(turn_context, stored)

    async def clear(self, turn_context: TurnContext) -> None:
        await self._history.set(turn_context, [])
