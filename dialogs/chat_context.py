"""What the chat dialog adds around the history: facts it learns about the user, the context
blocks of the prompt (user memory, summary), and folding old turns into the summary.

Kept apart from ChatDialog so the reply logic stays readable; see dialogs/user_memory.py and
dialogs/summary.py for the data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from botbuilder.core import TurnContext

from dialogs.memory import ConversationMemory
from dialogs.model_facts import ModelFacts
from dialogs.prompt import first_that_fits
from dialogs.summary import FOLD_ABOVE, FOLD_TO, PINNED, SUMMARY_SHARE, summary_block
from dialogs.user_facts import Fact, extract_facts, remember_request
from dialogs.user_memory import MemoryConflict, UserMemory, memory_block
from models import ChatMessage, ChatModel

logger = logging.getLogger(__name__)


class ChatContext:
    """Learns facts from the sender's messages and builds the prompt's context blocks.

    `user_memory` None turns user memory off (BOTLOOM_MEMORY=false): nothing is learnt or shown.
    Only the sender's own message is read, and its facts are kept for the sender alone, so in a
    group chat nothing said by one member is kept about another.
    """

    def __init__(
        self,
        memory: ConversationMemory,
        user_memory: UserMemory | None,
        model_facts: ModelFacts | None = None,
    ) -> None:
        self._memory = memory
        self._user_memory = user_memory
        self._model_facts = model_facts

    async def learn(self, turn_context: TurnContext, text: str) -> Fact | None:
        """Keep the facts `text` states about its sender; return the fact when the message asks
        to be remembered ("remember that ..."), which the dialog confirms instead of asking the
        model. A storage conflict that never resolves is logged and the turn goes on."""
        if self._user_memory is None:
            return None
        request = remember_request(text)
        facts = [request] if request is not None else extract_facts(text)
        if facts:
            try:
                kept = await self._user_memory.add(turn_context, facts)
            except MemoryConflict:
                logger.warning(
                    "user memory not updated conversation=%s",
                    turn_context.activity.conversation.id
                    if turn_context.activity.conversation
                    else None,
                )
            else:
                turn_context.turn_state[_FACTS_KEY] = kept
        return request

    async def learn_with_model(self, turn_context: TurnContext, text: str) -> None:
        """After the reply: keep what the model's structured extraction finds (when configured)."""
        if self._user_memory is None or self._model_facts is None:
            return
        facts = await self._model_facts.extract(text)
        if facts:
            try:
                await self._user_memory.add(turn_context, facts)
            except MemoryConflict:
                logger.warning("user memory not updated from the model's extraction")

    async def blocks(self, turn_context: TurnContext) -> list[str]:
        """The context blocks of this turn's prompt, least important first (build_prompt drops
        from the front when space is short): the summary, then the user's facts."""
        blocks = [summary_block(await self._memory.summary(turn_context))]
        if self._user_memory is not None:
            facts = turn_context.turn_state.get(_FACTS_KEY)
            if facts is None:
                facts = await self._user_memory.facts(turn_context)
            blocks.append(memory_block(facts))
        return [block for block in blocks if block]

    async def fold_if_needed(
        self,
        turn_context: TurnContext,
        model: ChatModel,
        system: Sequence[ChatMessage],
        budget_tokens: int,
    ) -> int:
        """After the reply: when system + recent history exceed FOLD_ABOVE of the budget, fold the
        oldest turns into the summary until they fit FOLD_TO of it. Returns how many messages
        were folded. Cheap (token counts only): no model call."""
        recent = await self._memory.recent(turn_context)
        used = await asyncio.to_thread(model.count_tokens, [*system, *recent])  # CPU work
        if used <= budget_tokens * FOLD_ABOVE:
            return 0
        start = await asyncio.to_thread(
            first_that_fits, model, system, recent, [], int(budget_tokens * FOLD_TO)
        )
        start = min(start, max(0, len(recent) - 2))  # keep at least the last exchange
        while start < len(recent) and recent[start].role == "assistant":
            start += 1
        if start:
            await self._memory.fold(turn_context, start)
            await self._bound_summary(turn_context, model, int(budget_tokens * SUMMARY_SHARE))
        return start

    async def _bound_summary(self, turn_context: TurnContext, model: ChatModel, limit: int) -> None:
        """Drop the summary's oldest unpinned lines until its block fits `limit` tokens."""
        lines = await self._memory.summary(turn_context)
        before = len(lines)

        def tokens() -> int:
            return model.count_tokens([ChatMessage("system", summary_block(lines))])

        def bound() -> None:
            while lines and tokens() > limit:
                del lines[PINNED if len(lines) > PINNED else 0]

        await asyncio.to_thread(bound)  # token counts are CPU work: off the event loop
        if len(lines) != before:
            await self._memory.set_summary(turn_context, lines)


_FACTS_KEY = "botloom.user_facts"  # turn_state: the facts as stored by this turn's update
