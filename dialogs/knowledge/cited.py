"""The passages the previous answer cited, kept in the conversation's state (so every replica,
and the bot after a restart, can take a follow-up back to them)."""

from __future__ import annotations

from collections.abc import Sequence

from botbuilder.core import ConversationState, TurnContext

from dialogs.knowledge.passages import Passage

MAX_CITED = 3
_KEPT = ("text", "title", "source", "document_id", "url", "heading", "page")


class CitedPassages:
    """Reads and writes the turn's conversation's last cited passages."""

    def __init__(self, conversation_state: ConversationState) -> None:
        self._cited = conversation_state.create_property("knowledge_cited")

    async def get(self, turn_context: TurnContext) -> list[Passage]:
        stored = await self._cited.get(turn_context, list)
        if not isinstance(stored, list):
            return []
        passages = []
        for item in stored:
            if isinstance(item, dict) and all(key in item for key in _KEPT):
                attached = item.get("attached") is True  # absent in state kept before it was
                passages.append(Passage(**{key: item[key] for key in _KEPT}, attached=attached))
        return passages

    async def set(self, turn_context: TurnContext, passages: Sequence[Passage]) -> None:
        kept = [
            {key: getattr(p, key) for key in _KEPT} | {"attached": p.attached}
            for p in passages[:MAX_CITED]
        ]
        await self._cited.set(turn_context, kept)
