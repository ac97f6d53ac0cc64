"""The default dialog: answer the user's message with the model, remembering the conversation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.dialogs import Dialog, DialogContext, DialogTurnResult

from dialogs.memory import ConversationMemory
from dialogs.prompt import PromptTooLong, build_prompt
from models import (
    ChatMessage,
    ChatModel,
    GenerationParams,
    ModelError,
    ModelOverloaded,
    ModelShuttingDown,
    ModelTimeout,
    ModelUnavailable,
)

logger = logging.getLogger(__name__)

OUTCOME_KEY = "botloom.outcome"  # turn_state key: how the turn ended, for the turn log

EMPTY_REPLY = "I don't have an answer to that. Could you rephrase it?"
TOO_LONG = "That message is too long for me. Could you shorten it?"
NOT_TEXT = "I can only read text messages for now."


@dataclass(frozen=True)
class ChatOptions:
    """What the chat dialog needs besides the model: the persona and the token budget."""

    system_prompt: str
    context_tokens: int = 2048
    params: GenerationParams = field(default_factory=GenerationParams)


class ChatDialog(Dialog):
    """One model reply per turn: prompt from history that fits the budget, reply, remember both."""

    def __init__(self, model: ChatModel, memory: ConversationMemory, options: ChatOptions) -> None:
        super().__init__(ChatDialog.__name__)
        self._model = model
        self._memory = memory
        self._options = options

    async def begin_dialog(self, dialog_context: DialogContext, options: object = None) -> DialogTurnResult:
        turn_context = dialog_context.context
        text = (turn_context.activity.text or "").strip()
        if not text:
            await turn_context.send_activity(NOT_TEXT)
            return await dialog_context.end_dialog()
        await self._answer(turn_context, text)
        return await dialog_context.end_dialog()

    async def _answer(self, turn_context: TurnContext, text: str) -> None:
        budget = min(self._options.context_tokens, self._model.context_window)
        history = await self._memory.history(turn_context)
        try:
            prompt = build_prompt(
                self._model,
                self._options.system_prompt,
                history,
                text,
                budget_tokens=budget - self._options.params.max_new_tokens,
            )
        except PromptTooLong:
            await turn_context.send_activity(TOO_LONG)
            return
        except ModelError as error:
            turn_context.turn_state[OUTCOME_KEY] = outcome_of(error)
            await turn_context.send_activity(apology_for(error))
            return
        reply = ""
        try:
            async for piece in self._model.stream(prompt, self._options.params):
                reply += piece
        except ModelError as error:
            logger.warning(
                "model failed conversation=%s error=%s",
                turn_context.activity.conversation.id,
                type(error).__name__,
            )
            turn_context.turn_state[OUTCOME_KEY] = outcome_of(error)
            await self._memory.append(turn_context, ChatMessage("user", text))
            await turn_context.send_activity(apology_for(error))
            return
        reply = reply.strip()
        await self._memory.append(
            turn_context, ChatMessage("user", text), *([ChatMessage("assistant", reply)] if reply else [])
        )
        await turn_context.send_activity(MessageFactory.text(reply or EMPTY_REPLY))


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


def apology_for(error: ModelError) -> str:
    """A short message for the user that says what went wrong, without internals."""
    if isinstance(error, ModelOverloaded):
        return f"I'm busy right now. Please try again in {max(1, round(error.retry_after))} s."
    if isinstance(error, ModelTimeout):
        return "Sorry, that took me too long. Please try again."
    if isinstance(error, ModelShuttingDown):
        return "Sorry, I'm restarting right now. Please send that again in a minute."
    if isinstance(error, ModelUnavailable):
        return "Sorry, my language model isn't available right now. Please try again shortly."
    return "Sorry, something went wrong while I was answering. Please try again."
