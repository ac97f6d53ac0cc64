"""The default dialog: answer the user's message, remembering the conversation.

It only orchestrates: the answer's stages (dialogs/answer/stages.py) run in order, the first that
answers ends the turn, else the model replies (dialogs/answer/model_reply.py) and the stages do
their work after the reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack

from botbuilder.core import TurnContext
from botbuilder.dialogs import Dialog, DialogContext, DialogTurnResult

from dialogs.answer.apologies import OUTCOME_KEY, TOO_LONG, apology_for, outcome_of
from dialogs.answer.files_stage import FilesStage
from dialogs.answer.knowledge_stage import KnowledgeStage
from dialogs.answer.memory_stage import MemoryStage
from dialogs.answer.model_reply import ModelReply
from dialogs.answer.observer import AnswerObserver, PassiveObserver
from dialogs.answer.options import ChatOptions
from dialogs.answer.reply import Reply, ReplyChannel
from dialogs.answer.stages import AnswerStage, TurnDraft
from dialogs.answer.turn_reply import TurnReply
from dialogs.files import ConversationFiles
from dialogs.knowledge.cited import CitedPassages
from dialogs.knowledge.meaning import MeaningRanker
from dialogs.knowledge.passages import Retriever
from dialogs.memory.history import ConversationMemory
from dialogs.memory.meaning import FactMeaning
from dialogs.memory.model_facts import ModelFacts
from dialogs.memory.user_store import UserMemory
from models import ChatModel

__all__ = ["OUTCOME_KEY", "TOO_LONG", "ChatDialog", "ChatOptions", "apology_for", "outcome_of"]

NOT_TEXT = "I can only read text messages for now."
# A question on the documents' topic that none of them answers: said, not guessed by the model.
NOT_IN_DOCUMENTS = (
    "I couldn't find that in the documents I can search. Try other words, or ask someone who knows."
)


class ChatDialog(Dialog):
    """One answer per turn, from these stages in order: the user's memory (what is known about
    the user; `user_memory` None turns it off), then the conversation's files (`files`; None
    turns them off), then the knowledge index (`retriever`; None turns it off; `ranker` reranks
    its passages by meaning, `cited` keeps the ones an answer cited for a follow-up), then tools
    (`tool_stage`), then the model. `replies` shows the answer as the turn's channel does."""

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
        observer: AnswerObserver | None = None,
        files: ConversationFiles | None = None,
        tool_stage: AnswerStage | None = None,
        meaning: FactMeaning | None = None,
        ranker: MeaningRanker | None = None,
        cited: CitedPassages | None = None,
    ) -> None:
        super().__init__(ChatDialog.__name__)
        self._observer = observer or PassiveObserver()  # spans, metrics, token usage (bot/)
        self._model = model
        self._memory = memory
        self._options = options
        self._replies = replies
        self._files = FilesStage(files) if files is not None else None
        searches = retriever is not None or files is not None
        self._stages: Sequence[AnswerStage] = [
            MemoryStage(
                memory,
                user_memory,
                model_facts,
                model=model,
                system_prompt=options.system_prompt,
                meaning=meaning,
            ),
            *([self._files] if self._files is not None else []),
            *(
                [KnowledgeStage(retriever, model, options.knowledge, ranker=ranker, cited=cited)]
                if searches
                else []
            ),
            # tools last: a tool's result replaces the knowledge passages the reply answers from
            *([tool_stage] if tool_stage else []),
        ]
        self._model_reply = ModelReply(model, memory, options, observer=self._observer)

    async def begin_dialog(
        self, dialog_context: DialogContext, options: object = None
    ) -> DialogTurnResult:
        turn_context = dialog_context.context
        text = (turn_context.activity.text or "").strip()
        if self._files is not None and self._files.attached(turn_context):
            await self._files.receive(turn_context, question=bool(text))
            if not text:  # the files' acknowledgement was the answer
                return await dialog_context.end_dialog()
        if not text:
            await self._replies.send(turn_context, Reply(NOT_TEXT))
        else:
            await self._answer(turn_context, text)
        return await dialog_context.end_dialog()

    async def _answer(self, turn_context: TurnContext, text: str) -> None:
        async with AsyncExitStack() as stack:
            replies = TurnReply(self._replies, turn_context, stack)
            draft = TurnDraft(
                text,
                history=await self._memory.recent(turn_context),
                budget_tokens=self._options.prompt_budget(self._model),
                progress=replies.inform,
            )
            for stage in self._stages:
                with self._observer.stage(turn_context, stage_name(stage)):
                    await stage.prepare(turn_context, draft)
                if draft.answer is not None:  # needs no model: sent as is
                    await self._send_answer(turn_context, replies, draft, draft.answer)
                    return
            if draft.unanswered and not draft.passages:  # no tool answered it either
                await self._send_answer(turn_context, replies, draft, NOT_IN_DOCUMENTS)
                return
            if await self._model_reply.reply(turn_context, draft, replies):
                for stage in self._stages:  # after the reply: nothing here is on the user's wait
                    await stage.after_reply(turn_context, draft)

    async def _send_answer(
        self, turn_context: TurnContext, replies: TurnReply, draft: TurnDraft, answer: str
    ) -> None:
        self._observer.answered(turn_context, passages=len(draft.passages), citations=0)
        await self._model_reply.remember(turn_context, draft.text, answer)
        await replies.send(turn_context, Reply(answer))


def stage_name(stage: AnswerStage) -> str:
    """A stage's name in traces: MemoryStage -> "memory"."""
    return type(stage).__name__.removesuffix("Stage").lower()
