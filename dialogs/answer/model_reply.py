"""The model stage of a turn's answer: the prompt the stages built, the model's reply (ending on
a sentence, checked against its passages, with their citations), streamed or sent by the
channel layer, and remembered as the user was shown it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from functools import cache, partial

from botbuilder.core import TurnContext

from dialogs.answer.apologies import OUTCOME_KEY, TOO_LONG, apology_for, outcome_of
from dialogs.answer.observer import AnswerObserver, PassiveObserver
from dialogs.answer.options import ChatOptions
from dialogs.answer.prompt import build_prompt
from dialogs.answer.reply import Reply, ReplyChannel, StreamOutcome, StreamResult, with_note
from dialogs.answer.reply_ending import end_on_sentence, is_empty_reply
from dialogs.answer.stages import TurnDraft
from dialogs.knowledge.citations import cite
from dialogs.knowledge.grounding import grounded_prompt, grounding_tokens
from dialogs.knowledge.guard import extractive_answer, grounded_answer
from dialogs.knowledge.passages import Passage
from dialogs.memory.history import ConversationMemory
from models import ChatMessage, ChatModel, ModelError, PromptTooLong

logger = logging.getLogger(__name__)

TOOL_DOCUMENT = "tool:"  # the document_id prefix of a tool's result (dialogs/tools/results.py)

EMPTY_REPLY = "I don't have an answer to that. Could you rephrase it?"
STOPPED_TEXT = "Stopped."
INCOMPLETE_MARK = " … (incomplete: the user stopped this reply)"  # kept in the history
RETRY_TEMPERATURE = 0.8  # a retried empty reply samples more freely


def quotable(passages: Sequence[Passage]) -> bool:
    """Passages from documents (a tool's result is data the model words an answer from)."""
    return not any(p.document_id.startswith(TOOL_DOCUMENT) for p in passages)


class ModelReply:
    """Replies with the model. A reply from passages streams no text: it is checked against
    them (dialogs/knowledge/guard.py) and its citations added once it is complete. An empty
    reply is tried once more; a model failure ends in a short apology."""

    def __init__(
        self,
        model: ChatModel,
        memory: ConversationMemory,
        options: ChatOptions,
        *,
        observer: AnswerObserver | None = None,
    ) -> None:
        self._observer = observer or PassiveObserver()
        self._model = model
        self._memory = memory
        self._options = options

    async def reply(
        self, turn_context: TurnContext, draft: TurnDraft, replies: ReplyChannel
    ) -> bool:
        """Reply to the draft's message through `replies` (the turn's channel); False when it
        apologised before the model ran (the message does not fit, or the model failed while the
        prompt was built).

        The message and the reply go into the history, except a message that does not fit the
        model's window (found while the prompt is built, or said by the model when its tokenizer
        counts more than `count_tokens`): kept, it would make every later prompt too long."""
        try:
            prompt, passages = await self._grounded_prompt(draft)
        except PromptTooLong:
            await replies.send(turn_context, Reply(TOO_LONG))
            return False
        except ModelError as error:
            turn_context.turn_state[OUTCOME_KEY] = outcome_of(error)
            await replies.send(turn_context, Reply(apology_for(error)))
            return False
        if passages and self._options.knowledge.quote and quotable(passages):
            await self._quote(turn_context, draft, passages, replies)
            return True
        async with replies.open(turn_context, show_text=not passages) as out:
            result = await out.pump(lambda: self._pieces(turn_context, prompt, 0, passages))
            if result.outcome is StreamOutcome.COMPLETED and is_empty_reply(result.text):
                # nothing was streamed (end_on_sentence holds back text without content)
                result = await out.pump(lambda: self._pieces(turn_context, prompt, 1, passages))
            if result.error is not None:
                self._log_model_error(turn_context, result.error)
                turn_context.turn_state[OUTCOME_KEY] = outcome_of(result.error)
            reply = result.text.strip()
            completed = result.outcome is StreamOutcome.COMPLETED
            if completed and not is_empty_reply(reply):  # the final replaces what was streamed
                reply = grounded_answer(reply, passages, draft.text)
            stopped = reply and result.outcome is StreamOutcome.USER_STOPPED
            if not isinstance(result.error, PromptTooLong):  # kept, it would never fit again
                await self.remember(
                    turn_context, draft.text, reply + INCOMPLETE_MARK if stopped else reply
                )
            if is_empty_reply(reply):
                await out.finish(Reply(final_text(result)))
            elif completed:
                await out.finish(self._cited(turn_context, draft, reply, passages, generated=True))
            else:
                await out.finish(Reply(final_text(result), generated=True))
        return True

    async def _quote(
        self,
        turn_context: TurnContext,
        draft: TurnDraft,
        passages: Sequence[Passage],
        replies: ReplyChannel,
    ) -> None:
        """Answer with the passages' own sentences about the question, cited; the model is not
        asked (KnowledgeOptions.quote)."""
        reply = extractive_answer(passages, draft.text)
        await self.remember(turn_context, draft.text, reply)
        await replies.send(turn_context, self._cited(turn_context, draft, reply, passages))

    def _cited(
        self,
        turn_context: TurnContext,
        draft: TurnDraft,
        reply: str,
        passages: Sequence[Passage],
        *,
        generated: bool = False,
    ) -> Reply:
        """`reply` with its citations, kept in the draft (for the next turn) and counted."""
        cited = cite(reply, passages)
        draft.cited = cited.cited
        self._observer.answered(turn_context, passages=len(passages), citations=len(cited.cited))
        return Reply(cited.text, cited.cited, generated=generated)

    async def remember(self, turn_context: TurnContext, text: str, reply: str) -> None:
        """The user's message and (unless empty) the reply, in the conversation's history."""
        await self._memory.append(
            turn_context,
            ChatMessage("user", text),
            *([ChatMessage("assistant", reply)] if reply else []),
        )

    async def _grounded_prompt(self, draft: TurnDraft) -> tuple[list[ChatMessage], list[Passage]]:
        """The prompt with the draft's passages, or without them where the message alone fills
        the budget. PromptTooLong when the message does not fit even so."""
        asked, passages = draft.text + draft.note, draft.passages
        try:
            grounding = await asyncio.to_thread(grounding_tokens, self._model, passages)
            prompt = await self._prompt(draft, asked, draft.budget_tokens - grounding)
        except PromptTooLong:
            if not passages:
                raise
            passages = []  # answer without sources
            prompt = await self._prompt(draft, asked, draft.budget_tokens)
        return grounded_prompt(prompt, passages), passages

    async def _prompt(self, draft: TurnDraft, text: str, budget_tokens: int) -> list[ChatMessage]:
        """The prompt within `budget_tokens`; tokenising (several times) is CPU work, so it runs
        off the event loop. PromptTooLong when the message alone does not fit."""
        return await asyncio.to_thread(
            partial(
                build_prompt,
                self._model,
                self._options.system_prompt,
                draft.history,
                text,
                budget_tokens=budget_tokens,
                context=draft.context,
            )
        )

    def _pieces(
        self,
        turn_context: TurnContext,
        prompt: Sequence[ChatMessage],
        attempt: int,
        passages: Sequence[Passage],
    ) -> AsyncIterator[str]:
        """The model's reply, ending on a sentence. A reply from passages is greedy (it should
        copy their facts, not vary them); a retry of an empty reply samples more freely."""
        cap, grace = self._options.params.max_new_tokens, self._options.grace
        params = replace(self._options.params, max_new_tokens=cap + grace)
        if passages:
            params = replace(params, temperature=0.0)
        if attempt:
            params = replace(params, temperature=max(params.temperature, RETRY_TEMPERATURE))
        model = self._model

        @cache
        def template_tokens() -> int:  # what the template adds around an assistant message
            return model.count_tokens([ChatMessage("assistant", "")])

        def count(text: str) -> int:  # end_on_sentence calls it in a worker thread
            return model.count_tokens([ChatMessage("assistant", text)]) - template_tokens()

        pieces = self._observer.generation(
            turn_context, prompt, params, self._model.stream(prompt, params)
        )
        return end_on_sentence(pieces, count, cap=cap, grace=grace)

    @staticmethod
    def _log_model_error(turn_context: TurnContext, error: ModelError) -> None:
        logger.warning(
            "model failed conversation=%s error=%s",
            turn_context.activity.conversation.id,
            type(error).__name__,
        )


def final_text(result: StreamResult) -> str:
    """The final message of a reply: the reply, or what was produced plus a short note."""
    reply = result.text.strip()
    if result.error is not None:
        return with_note(reply, apology_for(result.error))
    if result.outcome in (StreamOutcome.USER_STOPPED, StreamOutcome.STREAM_ENDED):
        return reply or STOPPED_TEXT
    if result.outcome is StreamOutcome.SEND_FAILED:
        return with_note(reply, apology_for(ModelError()))
    return EMPTY_REPLY if is_empty_reply(reply) else reply
