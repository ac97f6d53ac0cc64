"""The default dialog: answer the user's message with the model, remembering the conversation."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.dialogs import Dialog, DialogContext, DialogTurnResult
from botbuilder.schema import Activity

from dialogs.ai_content import mark_ai_reply
from dialogs.citations import cite, cited_message
from dialogs.knowledge import (
    KnowledgeOptions,
    Passage,
    Retriever,
    choose_passages,
    follow_up_query,
    grounded_prompt,
    grounding_tokens,
)
from dialogs.memory import ConversationMemory
from dialogs.message_parts import split_message
from dialogs.prompt import build_prompt
from dialogs.streaming import TEAMS, StreamOptions, StreamPolicy, stream_policy
from dialogs.streaming_reply import StreamingReply, StreamOutcome, StreamResult, with_note
from models import (
    ChatMessage,
    ChatModel,
    GenerationParams,
    ModelError,
    ModelOverloaded,
    ModelShuttingDown,
    ModelTimeout,
    ModelUnavailable,
    PromptTooLong,
)

logger = logging.getLogger(__name__)

OUTCOME_KEY = "botloom.outcome"  # turn_state key: how the turn ended, for the turn log

EMPTY_REPLY = "I don't have an answer to that. Could you rephrase it?"
TOO_LONG = "That message is too long for me. Could you shorten it?"
NOT_TEXT = "I can only read text messages for now."
STOPPED_TEXT = "Stopped."
INCOMPLETE_MARK = " … (incomplete: the user stopped this reply)"  # kept in the history


@dataclass(frozen=True)
class ChatOptions:
    """What the chat dialog needs besides the model: the persona, the token budget, and how
    replies stream on channels that support it."""

    system_prompt: str
    context_tokens: int = 2048
    params: GenerationParams = field(default_factory=GenerationParams)
    stream: StreamOptions = field(default_factory=StreamOptions)
    knowledge: KnowledgeOptions = field(default_factory=KnowledgeOptions)
    feedback_buttons: bool = True  # Teams' thumbs up / down under each model reply


class ChatDialog(Dialog):
    """One model reply per turn: prompt from history that fits the budget, reply, remember both.

    With a `retriever`, the best passages of the user's documents go into the prompt and the
    reply carries citations of the ones it used (dialogs/citations.py)."""

    def __init__(
        self,
        model: ChatModel,
        memory: ConversationMemory,
        options: ChatOptions,
        retriever: Retriever | None = None,
    ) -> None:
        super().__init__(ChatDialog.__name__)
        self._model = model
        self._memory = memory
        self._options = options
        self._retriever = retriever

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
        budget -= self._options.params.max_new_tokens
        history = await self._memory.history(turn_context)
        passages = await self._passages(turn_context, history, text)
        try:
            try:
                prompt = await self._prompt(
                    history, text, budget - grounding_tokens(self._model, passages)
                )
            except PromptTooLong:
                if not passages:
                    raise
                passages = []  # the message alone fills the budget: answer without sources
                prompt = await self._prompt(history, text, budget)
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

    async def _passages(
        self, turn_context: TurnContext, history: Sequence[ChatMessage], text: str
    ) -> list[Passage]:
        """The passages for this turn; [] without a retriever or when it fails (logged)."""
        if self._retriever is None:
            return []
        options = self._options.knowledge
        try:
            found = await self._retriever.search(text, options.passages)
            follow_up = follow_up_query(history, text)
            if not found and follow_up is not None:
                found = await self._retriever.search(follow_up, options.passages)
        except Exception:
            logger.exception(
                "knowledge retrieval failed conversation=%s", turn_context.activity.conversation.id
            )
            return []
        return choose_passages(self._model, found, options)

    async def _reply_in_one_message(
        self,
        turn_context: TurnContext,
        text: str,
        prompt: Sequence[ChatMessage],
        passages: Sequence[Passage] = (),
    ) -> None:
        reply = ""
        try:
            params = self._params(passages)
            async with aclosing(self._model.stream(prompt, params)) as pieces:
                async for piece in pieces:
                    reply += piece
        except ModelError as error:
            self._log_model_error(turn_context, error)
            turn_context.turn_state[OUTCOME_KEY] = outcome_of(error)
            await self._remember(turn_context, text, "")
            await turn_context.send_activity(apology_for(error))
            return
        reply = reply.strip()
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
        passages: Sequence[Passage] = (),
    ) -> None:
        """Stream the reply (Teams, Web Chat); the history keeps what the user was shown. A
        completed reply's final message carries its citations."""
        async with StreamingReply(turn_context, policy) as stream:
            params = self._params(passages)
            result = await stream.pump(lambda: self._model.stream(prompt, params))
            if result.error is not None:
                self._log_model_error(turn_context, result.error)
                turn_context.turn_state[OUTCOME_KEY] = outcome_of(result.error)
            reply = result.text.strip()
            if reply and result.outcome is StreamOutcome.USER_STOPPED:
                await self._remember(turn_context, text, reply + INCOMPLETE_MARK)
            else:
                await self._remember(turn_context, text, reply)
            if not reply:
                await stream.finish(final_text(result))
            elif result.outcome is StreamOutcome.COMPLETED:
                final, claims = cited_message(
                    turn_context.activity.channel_id, cite(reply, passages)
                )
                await stream.finish(
                    final, decorate=partial(self._mark, turn_context, claims=claims)
                )
            else:
                await stream.finish(final_text(result), decorate=partial(self._mark, turn_context))

    async def _prompt(
        self, history: Sequence[ChatMessage], text: str, budget_tokens: int
    ) -> list[ChatMessage]:
        """The prompt within `budget_tokens`; tokenising (several times) is CPU work, so it runs
        off the event loop. PromptTooLong when the message alone does not fit."""
        return await asyncio.to_thread(
            build_prompt,
            self._model,
            self._options.system_prompt,
            history,
            text,
            budget_tokens=budget_tokens,
        )

    def _mark(
        self, turn_context: TurnContext, activity: Activity, claims: list[dict] | None = None
    ) -> Activity:
        """The AI label (with the reply's citation claims, where it has them) and, in Teams, the
        feedback buttons on a message of a model reply."""
        return mark_ai_reply(
            activity,
            channel_id=turn_context.activity.channel_id,
            feedback=self._options.feedback_buttons,
            citations=claims,
        )

    def _params(self, passages: Sequence[Passage]) -> GenerationParams:
        """A reply from passages is greedy: it should copy their facts, not vary them."""
        if passages:
            return dataclasses.replace(self._options.params, temperature=0.0)
        return self._options.params

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


def outcome_of(error: ModelError) -> str:
    """The turn log's name for a model failure."""
    if isinstance(error, ModelOverloaded):
        return "overloaded"
    if isinstance(error, ModelTimeout):
        return "timeout"
    if isinstance(error, ModelShuttingDown):
        return "shutdown"
    if isinstance(error, ModelUnavailable):
        return "unavailable"
    return "model_error"


def final_text(result: StreamResult) -> str:
    """The final message of a stream: the reply, or what was produced plus a short note."""
    reply = result.text.strip()
    if result.error is not None:
        return with_note(reply, apology_for(result.error))
    if result.outcome in (StreamOutcome.USER_STOPPED, StreamOutcome.STREAM_ENDED):
        return reply or STOPPED_TEXT
    if result.outcome is StreamOutcome.SEND_FAILED:
        return with_note(reply, apology_for(ModelError()))
    return reply or EMPTY_REPLY


def apology_for(error: ModelError) -> str:
    """A short message for the user that says what went wrong, without internals."""
    if isinstance(error, PromptTooLong):  # a model server with a smaller window than configured
        return TOO_LONG
    if isinstance(error, ModelOverloaded):
        return f"I'm busy right now. Please try again in {max(1, round(error.retry_after))} s."
    if isinstance(error, ModelTimeout):
        return "Sorry, that took me too long. Please try again."
    if isinstance(error, ModelShuttingDown):
        return "Sorry, I'm restarting right now. Please send that again in a minute."
    if isinstance(error, ModelUnavailable):
        return "Sorry, my language model isn't available right now. Please try again shortly."
    return "Sorry, something went wrong while I was answering. Please try again."
