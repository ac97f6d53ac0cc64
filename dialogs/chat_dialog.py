"""The default dialog: answer the user's message with the model, remembering the conversation."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.dialogs import Dialog, DialogContext, DialogTurnResult

from dialogs.chat_context import ChatContext
from dialogs.memory import ConversationMemory
from dialogs.memory_commands import remember_reply
from dialogs.model_facts import ModelFacts
from dialogs.prompt import build_prompt, system_message
from dialogs.reply_ending import DEFAULT_GRACE_TOKENS, end_on_sentence, is_empty_reply
from dialogs.streaming import StreamOptions, StreamPolicy, stream_policy
from dialogs.streaming_reply import StreamingReply, StreamOutcome, StreamResult, with_note
from dialogs.user_memory import UserMemory
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
RETRY_TEMPERATURE = 0.8  # a retried empty reply samples more freely


@dataclass(frozen=True)
class ChatOptions:
    """What the chat dialog needs besides the model: the persona, the token budget, and how
    replies stream on channels that support it."""

    system_prompt: str
    context_tokens: int = 2048
    params: GenerationParams = field(default_factory=GenerationParams)
    stream: StreamOptions = field(default_factory=StreamOptions)
    # Replies that end on a sentence (dialogs/reply_ending.py): tokens past max_new_tokens the
    # model may use to finish its sentence.
    grace_tokens: int = DEFAULT_GRACE_TOKENS


class ChatDialog(Dialog):
    """One model reply per turn: prompt from what is known about the user, the summary and the
    history that fits the budget; a reply that ends on a sentence; remember both. `user_memory`
    None turns user memory off."""

    def __init__(
        self,
        model: ChatModel,
        memory: ConversationMemory,
        options: ChatOptions,
        user_memory: UserMemory | None = None,
        model_facts: ModelFacts | None = None,
    ) -> None:
        super().__init__(ChatDialog.__name__)
        self._model = model
        self._memory = memory
        self._options = options
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
        remembered = await self._context.learn(turn_context, text)
        if remembered is not None:
            confirmation = remember_reply(remembered.text)
            await self._remember(turn_context, text, confirmation)
            await turn_context.send_activity(confirmation)
            return
        context = await self._context.blocks(turn_context)
        history = await self._memory.recent(turn_context)
        try:
            prompt = build_prompt(
                self._model,
                self._options.system_prompt,
                history,
                text,
                budget_tokens=budget,
                context=context,
            )
        except PromptTooLong:
            await turn_context.send_activity(TOO_LONG)
            return
        except ModelError as error:
            turn_context.turn_state[OUTCOME_KEY] = outcome_of(error)
            await turn_context.send_activity(apology_for(error))
            return
        policy = stream_policy(turn_context.activity.channel_id, self._options.stream)
        if policy is None:
            await self._reply_in_one_message(turn_context, text, prompt)
        else:
            await self._reply_streamed(turn_context, text, prompt, policy)
        # After the reply is sent: nothing here is on the user's wait.
        system = system_message(self._options.system_prompt, context)
        await self._context.fold_if_needed(turn_context, self._model, system, budget)
        await self._context.learn_with_model(turn_context, text)

    @property
    def _grace(self) -> int:
        """The grace tokens, at most a quarter of the cap (small windows keep their prompt)."""
        return min(self._options.grace_tokens, self._options.params.max_new_tokens // 4)

    def _pieces(self, prompt: Sequence[ChatMessage], attempt: int = 0) -> AsyncIterator[str]:
        """The model's reply, ending on a sentence; a retry samples more freely."""
        cap, grace = self._options.params.max_new_tokens, self._grace
        params = replace(self._options.params, max_new_tokens=cap + grace)
        if attempt:
            params = replace(params, temperature=max(params.temperature, RETRY_TEMPERATURE))
        base = self._model.count_tokens([ChatMessage("assistant", "")])

        def count(text: str) -> int:
            return self._model.count_tokens([ChatMessage("assistant", text)]) - base

        return end_on_sentence(self._model.stream(prompt, params), count, cap=cap, grace=grace)

    async def _reply_in_one_message(
        self, turn_context: TurnContext, text: str, prompt: Sequence[ChatMessage]
    ) -> None:
        reply = ""
        try:
            for attempt in range(2):  # an empty reply is tried once more
                async with aclosing(self._pieces(prompt, attempt)) as pieces:
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
        reply = "" if is_empty_reply(reply) else reply.strip()
        await self._remember(turn_context, text, reply)
        await turn_context.send_activity(MessageFactory.text(reply or EMPTY_REPLY))

    async def _reply_streamed(
        self,
        turn_context: TurnContext,
        text: str,
        prompt: Sequence[ChatMessage],
        policy: StreamPolicy,
    ) -> None:
        """Stream the reply (Teams, Web Chat); the history keeps what the user was shown."""
        async with StreamingReply(turn_context, policy) as stream:
            result = await stream.pump(lambda: self._pieces(prompt))
            if result.outcome is StreamOutcome.COMPLETED and is_empty_reply(result.text):
                # nothing was streamed (end_on_sentence holds back text without content)
                result = await stream.pump(lambda: self._pieces(prompt, 1))
            if result.error is not None:
                self._log_model_error(turn_context, result.error)
                turn_context.turn_state[OUTCOME_KEY] = outcome_of(result.error)
            reply = result.text.strip()
            await self._remember(turn_context, text, reply)
            await stream.finish(final_text(result))

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
    if result.outcome is StreamOutcome.USER_STOPPED:
        return reply or STOPPED_TEXT
    if result.outcome is StreamOutcome.SEND_FAILED:
        return with_note(reply, apology_for(ModelError()))
    return EMPTY_REPLY if is_empty_reply(reply) else reply


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
