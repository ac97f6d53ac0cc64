"""The default dialog: answer the user's message with the model, remembering the conversation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from functools import cache, partial
from typing import Any

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.dialogs import Dialog, DialogContext, DialogTurnResult
from botbuilder.schema import Activity

from dialogs.ai_content import mark_ai_reply
from dialogs.apologies import TOO_LONG, apology_for, outcome_of
from dialogs.chat_context import ChatContext
from dialogs.citations import cite, cited_message
from dialogs.grounded_answer import grounded_answer
from dialogs.knowledge import (
    KnowledgeOptions,
    Passage,
    Retriever,
    find_passages,
    grounded_prompt,
    grounding_tokens,
)
from dialogs.memory import ConversationMemory
from dialogs.message_parts import split_message
from dialogs.model_facts import ModelFacts
from dialogs.prompt import build_prompt, system_message
from dialogs.reply_ending import DEFAULT_GRACE_TOKENS, end_on_sentence, is_empty_reply
from dialogs.streaming import TEAMS, StreamOptions, StreamPolicy, stream_policy
from dialogs.streaming_reply import StreamingReply, StreamOutcome, StreamResult, with_note
from dialogs.user_memory import UserMemory
from models import ChatMessage, ChatModel, GenerationParams, ModelError, PromptTooLong

__all__ = ["OUTCOME_KEY", "TOO_LONG", "ChatDialog", "ChatOptions", "apology_for", "outcome_of"]

logger = logging.getLogger(__name__)

OUTCOME_KEY = "botloom.outcome"  # turn_state key: how the turn ended, for the turn log

EMPTY_REPLY = "I don't have an answer to that. Could you rephrase it?"
NOT_TEXT = "I can only read text messages for now."
STOPPED_TEXT = "Stopped."
INCOMPLETE_MARK = " … (incomplete: the user stopped this reply)"  # kept in the history
RETRY_TEMPERATURE = 0.8  # a retried empty reply samples more freely


@dataclass(frozen=True)
class ChatOptions:
    """What the chat dialog needs besides the model: the persona, the token budget, how replies
    stream, how passages from the knowledge index are used, the tokens past max_new_tokens a
    reply may use to end its sentence (dialogs/reply_ending.py), and Teams' feedback buttons."""

    system_prompt: str
    context_tokens: int = 2048
    params: GenerationParams = field(default_factory=GenerationParams)
    stream: StreamOptions = field(default_factory=StreamOptions)
    knowledge: KnowledgeOptions = field(default_factory=KnowledgeOptions)
    grace_tokens: int = DEFAULT_GRACE_TOKENS
    feedback_buttons: bool = True  # Teams' thumbs up / down under each model reply


class ChatDialog(Dialog):
    """One model reply per turn. The prompt: what is known about the user (`user_memory`; None
    turns it off), the summary of older turns, the history that fits the budget, and the best
    passages of the knowledge index (`retriever`). The reply ends on a sentence and carries the
    AI label, its citations and, in Teams, feedback buttons; both are remembered."""

    def __init__(
        self,
        model: ChatModel,
        memory: ConversationMemory,
        options: ChatOptions,
        *,
        retriever: Retriever | None = None,
        user_memory: UserMemory | None = None,
        model_facts: ModelFacts | None = None,
    ) -> None:
        super().__init__(ChatDialog.__name__)
        self._model = model
        self._memory = memory
        self._options = options
        self._retriever = retriever
        self._context = ChatContext(memory, user_memory, model_facts)

    async def begin_dialog(
        self, dialog_context: DialogContext, options: object = None
    ) -> DialogTurnResult:
        turn_context = dialog_context.context
        text = (turn_context.activity.text or "").strip()
        if not text:
            await turn_context.send_activity(NOT_TEXT)
            return await dialog_context.end_dialog()
        await self._answer(turn_context, text)
        return await dialog_context.end_dialog()

    async def _answer(self, turn_context: TurnContext, text: str) -> None:
        budget = min(self._options.context_tokens, self._model.context_window)
        budget -= self._options.params.max_new_tokens + self._grace
        direct = await self._context.learn(turn_context, text)  # needs no model: sent as is
        if direct is not None:
            await self._remember(turn_context, text, direct)
            await turn_context.send_activity(direct)
            return
        asked = text + await self._context.note(turn_context, text)  # the prompt's user turn
        context = await self._context.blocks(turn_context)
        history = await self._memory.recent(turn_context)
        passages = await find_passages(
            self._retriever, self._model, history, text, self._options.knowledge
        )
        try:
            try:
                grounding = await asyncio.to_thread(grounding_tokens, self._model, passages)
                prompt = await self._prompt(history, asked, budget - grounding, context)
            except PromptTooLong:
                if not passages:
                    raise
                passages = []  # the message alone fills the budget: answer without sources
                prompt = await self._prompt(history, asked, budget, context)
            prompt = grounded_prompt(prompt, passages)
        except PromptTooLong:
            await turn_context.send_activity(TOO_LONG)
            return
        except ModelError as error:
            turn_context.turn_state[OUTCOME_KEY] = outcome_of(error)
            await turn_context.send_activity(apology_for(error))
            return
        activity = turn_context.activity
        conversation_type = (
            activity.conversation.conversation_type if activity.conversation else None
        )
        policy = stream_policy(activity.channel_id, self._options.stream, conversation_type)
        if policy is None:
            await self._reply_in_one_message(turn_context, text, prompt, passages)
        else:
            await self._reply_streamed(turn_context, text, prompt, policy, passages)
        # After the reply is sent: nothing here is on the user's wait.
        system = system_message(self._options.system_prompt, context)
        await self._context.fold_if_needed(turn_context, self._model, system, budget)
        await self._context.learn_with_model(turn_context, text)

    async def _prompt(
        self,
        history: Sequence[ChatMessage],
        text: str,
        budget_tokens: int,
        context: Sequence[str],
    ) -> list[ChatMessage]:
        """The prompt within `budget_tokens`; tokenising (several times) is CPU work, so it runs
        off the event loop. PromptTooLong when the message alone does not fit."""
        return await asyncio.to_thread(
            partial(
                build_prompt,
                self._model,
                self._options.system_prompt,
                history,
                text,
                budget_tokens=budget_tokens,
                context=context,
            )
        )

    @property
    def _grace(self) -> int:
        """The grace tokens, at most a quarter of the cap (small windows keep their prompt)."""
        return min(self._options.grace_tokens, self._options.params.max_new_tokens // 4)

    def _pieces(
        self, prompt: Sequence[ChatMessage], attempt: int, passages: Sequence[Passage]
    ) -> AsyncIterator[str]:
        """The model's reply, ending on a sentence. A reply from passages is greedy (it should
        copy their facts, not vary them); a retry of an empty reply samples more freely."""
        cap, grace = self._options.params.max_new_tokens, self._grace
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

        return end_on_sentence(self._model.stream(prompt, params), count, cap=cap, grace=grace)

    async def _reply_in_one_message(
        self,
        turn_context: TurnContext,
        text: str,
        prompt: Sequence[ChatMessage],
        passages: Sequence[Passage],
    ) -> None:
        reply = ""
        try:
            for attempt in range(2):  # an empty reply is tried once more
                async with aclosing(self._pieces(prompt, attempt, passages)) as pieces:
                    async for piece in pieces:
                        reply += piece
                if not is_empty_reply(reply):
                    break
        except ModelError as error:
            self._log_model_error(turn_context, error)
            turn_context.turn_state[OUTCOME_KEY] = outcome_of(error)
            await self._remember(turn_context, text, "")
            await turn_context.send_activity(apology_for(error))
            return
        reply = "" if is_empty_reply(reply) else grounded_answer(reply.strip(), passages, text)
        await self._remember(turn_context, text, reply)
        if not reply:
            await turn_context.send_activity(MessageFactory.text(EMPTY_REPLY))
            return
        final, claims = cited_message(turn_context.activity.channel_id, cite(reply, passages))
        channel = turn_context.activity.channel_id
        limit = self._options.stream.teams_max_message_bytes if channel == TEAMS else None
        for part in split_message(final, limit):
            message = MessageFactory.text(part)
            await turn_context.send_activity(self._mark(turn_context, message, claims))

    async def _reply_streamed(
        self,
        turn_context: TurnContext,
        text: str,
        prompt: Sequence[ChatMessage],
        policy: StreamPolicy,
        passages: Sequence[Passage],
    ) -> None:
        """Stream the reply (Teams, Web Chat); the history keeps what the user was shown. The
        final message of a completed reply carries its citations. A reply from passages streams
        no text: it is checked against them (and its markers added) once complete."""
        if passages:
            policy = replace(policy, text_updates=False)
        async with StreamingReply(turn_context, policy) as stream:
            result = await stream.pump(lambda: self._pieces(prompt, 0, passages))
            if result.outcome is StreamOutcome.COMPLETED and is_empty_reply(result.text):
                # nothing was streamed (end_on_sentence holds back text without content)
                result = await stream.pump(lambda: self._pieces(prompt, 1, passages))
            if result.error is not None:
                self._log_model_error(turn_context, result.error)
                turn_context.turn_state[OUTCOME_KEY] = outcome_of(result.error)
            reply = result.text.strip()
            if result.outcome is StreamOutcome.COMPLETED:  # the final message replaces the stream
                reply = grounded_answer(reply, passages, text)
            if reply and result.outcome is StreamOutcome.USER_STOPPED:
                await self._remember(turn_context, text, reply + INCOMPLETE_MARK)
            else:
                await self._remember(turn_context, text, reply)
            channel = turn_context.activity.channel_id
            if is_empty_reply(reply):
                await stream.finish(final_text(result))
            elif result.outcome is StreamOutcome.COMPLETED:
                final, claims = cited_message(channel, cite(reply, passages))
                await stream.finish(
                    final, decorate=partial(self._mark, turn_context, claims=claims)
                )
            else:
                await stream.finish(final_text(result), decorate=partial(self._mark, turn_context))

    def _mark(
        self,
        turn_context: TurnContext,
        activity: Activity,
        claims: list[dict[str, Any]] | None = None,
    ) -> Activity:
        """The AI label (with the reply's citation claims, where it has them) and, in Teams, the
        feedback buttons on a message of a model reply."""
        return mark_ai_reply(
            activity,
            channel_id=turn_context.activity.channel_id,
            feedback=self._options.feedback_buttons,
            citations=claims,
        )

    async def _remember(self, turn_context: TurnContext, text: str, reply: str) -> None:
        await self._memory.append(
            turn_context,
            ChatMessage("user", text),
            *([ChatMessage("assistant", reply)] if reply else []),
        )

    @staticmethod
    def _log_model_error(turn_context: TurnContext, error: ModelError) -> None:
        logger.warning(
            "model failed conversation=%s error=%s",
            turn_context.activity.conversation.id,
            type(error).__name__,
        )


def final_text(result: StreamResult) -> str:
    """The final message of a stream: the reply, or what was produced plus a short note."""
    reply = result.text.strip()
    if result.error is not None:
        return with_note(reply, apology_for(result.error))
    if result.outcome in (StreamOutcome.USER_STOPPED, StreamOutcome.STREAM_ENDED):
        return reply or STOPPED_TEXT
    if result.outcome is StreamOutcome.SEND_FAILED:
        return with_note(reply, apology_for(ModelError()))
    return EMPTY_REPLY if is_empty_reply(reply) else reply
