"""The memory stage of a turn's answer: facts it learns about the user, answers from them that need
no model, what the prompt gets from memory (the facts next to the question, the summary and the
user's facts as context blocks), and, after the reply, folding old turns into the summary.

The data and its rules live in dialogs/memory/.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from botbuilder.core import TurnContext

from dialogs.answer.prompt import first_that_fits, system_message
from dialogs.answer.stages import TurnDraft
from dialogs.memory.commands import NOTHING_KEPT, remember_reply
from dialogs.memory.fact_answers import ANSWER_LEAD, answer_from_facts, relevant_facts
from dialogs.memory.history import ConversationMemory
from dialogs.memory.meaning import ANSWER_MIN, FactMeaning, asks_about_user, is_advice
from dialogs.memory.model_facts import ModelFacts
from dialogs.memory.statements import Statement, life_statements
from dialogs.memory.summary import FOLD_ABOVE, FOLD_TO, PINNED, SUMMARY_SHARE, summary_block
from dialogs.memory.user_facts import Fact, remember_request, second_person
from dialogs.memory.user_store import MemoryConflict, UserMemory, memory_block
from dialogs.text import sentences
from models import ChatMessage, ChatModel, ModelUnavailable

logger = logging.getLogger(__name__)


def only_statements(text: str, statements: Sequence[Statement]) -> bool:
    """Whether every sentence of `text` states something kept about its sender: such a message
    is answered with what was kept (the user sees what the bot understood, and can correct it
    at once), not with a small model's small talk about it."""
    said = {statement.said.strip() for statement in statements if statement.fact}
    return bool(said) and all(sentence.strip() in said for sentence in sentences(text))


class MemoryStage:
    """Learns facts from the sender's messages, answers questions about the user that they
    answer, and builds the prompt's context blocks.

    `user_memory` None turns user memory off (BOTLOOM_MEMORY=false): nothing is learnt or shown.
    `meaning` (the embedding model) matches questions to facts, finds "what do you know about
    me?" and the fact a correction replaces; without it (or when it cannot load) the words of
    dialogs/memory/fact_answers.py match questions and newer facts replace by key only.
    Only the sender's own message is read, and its facts are kept for the sender alone, so in a
    group chat nothing said by one member is kept about another.
    """

    def __init__(
        self,
        memory: ConversationMemory,
        user_memory: UserMemory | None,
        model_facts: ModelFacts | None = None,
        *,
        model: ChatModel,
        system_prompt: str,
        meaning: FactMeaning | None = None,
    ) -> None:
        self._meaning = meaning
        self._memory = memory
        self._user_memory = user_memory
        self._model_facts = model_facts
        self._model = model
        self._system_prompt = system_prompt

    async def prepare(self, turn_context: TurnContext, draft: TurnDraft) -> None:
        """The answer from memory, if any; else the facts next to the message and the blocks."""
        draft.answer = await self.learn(turn_context, draft.text)
        if draft.answer is None:
            draft.note += await self.note(turn_context, draft.text)
            draft.context = [*await self.blocks(turn_context), *draft.context]

    async def after_reply(self, turn_context: TurnContext, draft: TurnDraft) -> None:
        """Fold old turns into the summary when the history outgrows the budget, then keep what
        the model's own extraction finds (when configured)."""
        system = system_message(self._system_prompt, draft.context)
        await self.fold_if_needed(turn_context, self._model, system, draft.budget_tokens)
        await self.learn_with_model(turn_context, draft.text)

    async def learn(self, turn_context: TurnContext, text: str) -> str | None:
        """Keep the facts `text` states about its sender. Returns the reply that needs no model,
        or None: the confirmation of a message that asks to be remembered ("remember that ..."),
        or the answer from the kept facts (and the summary) to a question about the user
        (dialogs/memory/fact_answers.py). A storage conflict that never resolves is logged."""
        request = remember_request(text) if self._user_memory is not None else None
        statements = [] if request is not None else life_statements(text)
        statements = statements if self._user_memory is not None else []
        facts = [request] if request is not None else [s.fact for s in statements if s.fact]
        turn_state = turn_context.turn_state
        turn_state[_STATED_KEY] = {fact.text for fact in facts}
        if (request is not None or statements) and self._user_memory is not None:
            try:
                kept = await self._keep(turn_context, request, statements)
            except MemoryConflict:
                logger.warning(
                    "user memory not updated conversation=%s",
                    turn_context.activity.conversation.id
                    if turn_context.activity.conversation
                    else None,
                )
            else:
                turn_state[_FACTS_KEY] = kept
        if request is not None:
            return remember_reply(request.text)
        if facts and self._meaning is not None:
            if only_statements(text, statements):  # "I have a cat called Pixel."
                return remember_reply(*(fact.text for fact in facts))
            return None  # "I have a cat. What toy should I get her?": the model answers
        return await self._answer(turn_context, text)

    async def _keep(
        self, turn_context: TurnContext, request: Fact | None, statements: list[Statement]
    ) -> list[dict[str, str]]:
        """Keep a remember request's fact or the statements' (a correction in place of the fact
        it corrects, found by meaning)."""
        assert self._user_memory is not None
        if request is not None or self._meaning is None:
            facts = [request] if request is not None else [s.fact for s in statements if s.fact]
            return await self._user_memory.add(turn_context, [f for f in facts if f])
        kept = await self._user_memory.facts(turn_context)
        try:
            facts, replaced = await self._meaning.plan(statements, kept)
        except ModelUnavailable:
            logger.warning("the embedding model is unavailable: facts replace by key only")
            facts, replaced = [s.fact for s in statements if s.fact], set()
        return await self._user_memory.replace(turn_context, facts, replaced)

    async def _answer(self, turn_context: TurnContext, text: str) -> str | None:
        """The answer from the kept facts to "what do you know about me?" or a question about the
        user, by meaning (else by words); None when they do not answer it."""
        if self._user_memory is None or not text.strip():
            return None
        known = await self._known(turn_context)
        if self._meaning is None:
            return answer_from_facts(text, known)
        if len(text) > 300 or not asks_about_user(text, known):
            return None
        try:
            await self._meaning.warm_question(text, known)  # one embedding call for the turn
            if await self._meaning.is_about_me(text):
                return _about_me([f for f in known if f.get("key")])
            if not known:
                return None
            if is_advice(text):  # "what should I name my new cat?" is not a lookup
                return None
            chosen, score = await self._meaning.answers(text, known)
        except ModelUnavailable:
            logger.warning("the embedding model is unavailable: facts answer by words")
            return answer_from_facts(text, known)
        if not chosen:
            return None
        sentences = [second_person(fact["text"]) for fact in chosen]
        sentences[0] = sentences[0][:1].lower() + sentences[0][1:]
        lead = ANSWER_LEAD if score >= ANSWER_MIN else CLOSEST_LEAD
        return lead + " ".join(sentences)

    async def note(self, turn_context: TurnContext, text: str) -> str:
        """What the prompt's user turn gets after the message: the kept facts that share a word
        with it ("" when none). A small model uses facts next to the question far more often than
        the same facts in the system message."""
        stated = turn_context.turn_state.get(_STATED_KEY, set())  # the message says them itself
        known = [f for f in await self._known(turn_context) if f["text"] not in stated]
        facts = relevant_facts(text, known)
        if not facts:
            return ""
        return "\n\n(Known about the user: " + " ".join(f["text"] for f in facts) + ")"

    async def _known(self, turn_context: TurnContext) -> list[dict[str, str]]:
        """The user's kept facts and the summary's lines, as facts, oldest first."""
        conversation = turn_context.activity.conversation
        group = conversation is not None and (
            conversation.is_group or conversation.conversation_type in ("groupChat", "channel")
        )  # the summary does not say who said what: in a group it answers nobody's questions
        lines = [] if group else await self._memory.summary(turn_context)
        known = [{"key": "", "text": line} for line in lines]
        if self._user_memory is not None:
            kept = turn_context.turn_state.get(_FACTS_KEY)
            known += kept if kept is not None else await self._user_memory.facts(turn_context)
        return known

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


CLOSEST_LEAD = "If I understand you right, from what you told me: "
ABOUT_ME_LEAD = "Here is what you've told me about yourself:"


def _about_me(facts: list[dict[str, str]]) -> str:
    if not facts:
        return NOTHING_KEPT
    lines = "\n".join(f"- {second_person(fact['text'])}" for fact in facts)
    return f"{ABOUT_ME_LEAD}\n\n{lines}\n\n/memory shows this list too; /forget clears it."


_FACTS_KEY = "botloom.user_facts"  # turn_state: the facts as stored by this turn's update
_STATED_KEY = "botloom.stated_facts"  # turn_state: the texts of the facts this message states
