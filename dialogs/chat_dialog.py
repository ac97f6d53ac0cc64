"""The default dialog: answer the user's message, remembering the conversation.

It only orchestrates: the answer's stages (dialogs/answer/stages.py) run in order, the first that
answers ends the turn, else the model replies (dialogs/answer/model_reply.py) and the stages do
their work after the reply.
"""

from __future__ import annotations

from collections.abc import Sequence

from botbuilder.core import TurnContext
from botbuilder.dialogs import Dialog, DialogContext, DialogTurnResult

from dialogs.answer.apologies import OUTCOME_KEY, TOO_LONG, apology_for, outcome_of
from dialogs.answer.knowledge_stage import KnowledgeStage
from dialogs.answer.memory_stage import MemoryStage
from dialogs.answer.model_reply import ModelReply
from dialogs.answer.options import ChatOptions
from dialogs.answer.reply import Reply, ReplyChannel
from dialogs.answer.stages import AnswerStage, TurnDraft
from dialogs.knowledge.cited import CitedPassages
from dialogs.knowledge.meaning import MeaningRanker
from dialogs.knowledge.passages import Retriever
from dialogs.memory.history import ConversationMemory
from dialogs.memory.model_facts import ModelFacts
from dialogs.memory.user_store import UserMemory
from models import ChatModel

__all__ = ["OUTCOME_KEY", "TOO_LONG", "ChatDialog", "ChatOptions", "apology_for", "outcome_of"]

NOT_TEXT = "I can only read text messages for now."


class ChatDialog(Dialog):
    """One answer per turn, from these stages in order: the user's memory (what is known about
    the user; `user_memory` None turns it off), then the knowledge index (`retriever`; None turns
    it off; `ranker` reranks its passages by meaning, `cited` keeps the ones an answer cited for
    a follow-up), then the model. `replies` shows the answer as the turn's channel does."""

    def __init__(
        self,
        model: ChatModel,
        memory: ConversationMemory,
        options: ChatOptions,
        replies: ReplyChannel,
        *,
        retriever: Retriever | None = None,
        user_memory: UserMemory | None = None,
        model_facts: ModelFacts | None = None,
        ranker: MeaningRanker | None = None,
        cited: CitedPassages | None = None,
    ) -> None:
        super().__init__(ChatDialog.__name__)
        self._model = model
        self._memory = memory
        self._options = options
        self._replies = replies
        self._stages: Sequence[AnswerStage] = [
            MemoryStage(
                memory,
                user_memory,
                model_facts,
                model=model,
                system_prompt=options.system_prompt,
            ),
            *(
                [KnowledgeStage(retriever, model, options.knowledge, ranker=ranker, cited=cited)]
                if retriever
                else []
            ),
        ]
        self._model_reply = ModelReply(model, memory, replies, options)

    async def begin_dialog(
        self, dialog_context: DialogContext, options: object = None
    ) -> DialogTurnResult:
        turn_context = dialog_context.context
        text = (turn_context.activity.text or "").strip()
        if not text:
            await self._replies.send(turn_context, Reply(NOT_TEXT))
        else:
            await self._answer(turn_context, text)
        return await dialog_context.end_dialog()

    async def _answer(self, turn_context: TurnContext, text: str) -> None:
        draft = TurnDraft(
            text,
            history=await self._memory.recent(turn_context),
            budget_tokens=self._options.prompt_budget(self._model),
        )
        for stage in self._stages:
            await stage.prepare(turn_context, draft)
            if draft.answer is not None:  # needs no model: sent as is
                await self._model_reply.remember(turn_context, text, draft.answer)
                await self._replies.send(turn_context, Reply(draft.answer))
                return
        if await self._model_reply.reply(turn_context, draft):
            for stage in self._stages:  # after the reply: nothing here is on the user's wait
                await stage.after_reply(turn_context, draft)
