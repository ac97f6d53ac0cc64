"""The turn's reply, which a stage may begin before the answer is known: `inform` shows progress
("Looking up order id A-10234…") as the informative update where the channel streams, and the
answer then ends that same stream instead of opening another (a Teams or Direct Line stream
starts with its informative update and must end with one final message)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, AsyncExitStack, nullcontext

from botbuilder.core import TurnContext

from dialogs.answer.reply import Reply, ReplyChannel, ReplyStream


class TurnReply:
    """A ReplyChannel for one turn that can be opened early with `inform`. `stack` closes the
    stream `inform` opened (with what was shown and a short note) if the turn ends without an
    answer."""

    def __init__(
        self, replies: ReplyChannel, turn_context: TurnContext, stack: AsyncExitStack
    ) -> None:
        self._replies = replies
        self._context = turn_context
        self._stack = stack
        self._stream: ReplyStream | None = None

    async def inform(self, text: str) -> None:
        """Show `text` as the reply's informative update (once: later calls do nothing). The
        answer's text is then not streamed, only sent whole at the end of the stream."""
        if self._stream is None:
            opened = self._replies.open(self._context, show_text=False, informative=text)
            self._stream = await self._stack.enter_async_context(opened)

    def open(
        self, turn_context: TurnContext, *, show_text: bool = True, informative: str | None = None
    ) -> AbstractAsyncContextManager[ReplyStream]:
        if self._stream is not None:
            return nullcontext(self._stream)
        return self._replies.open(turn_context, show_text=show_text, informative=informative)

    async def send(self, turn_context: TurnContext, reply: Reply) -> None:
        if self._stream is not None:
            await self._stream.finish(reply)
        else:
            await self._replies.send(turn_context, reply)
