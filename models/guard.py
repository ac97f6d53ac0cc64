"""Admission control, deadlines and shutdown for any ChatModel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from models.api import (
    ChatMessage,
    ChatModel,
    GenerationParams,
    ModelError,
    ModelOverloaded,
    ModelShuttingDown,
    ModelTimeout,
    WrappedChatModel,
)
from models.tool_calling import ToolCallingModel, ToolReply, ToolsUnsupported, supports_tools


@dataclass(frozen=True)
class GuardLimits:
    """`max_pending`: requests admitted at once (running or waiting for the backend); beyond it
    callers get ModelOverloaded at once. `deadline_s`: a whole reply must finish within it.
    `retry_after_s`: what an overloaded caller is told to wait."""

    max_pending: int = 32
    deadline_s: float = 60.0
    retry_after_s: float = 5.0


class GuardedChatModel(WrappedChatModel):
    """Wraps a ChatModel so that no caller waits without bound and memory stays bounded.

    Raises ModelOverloaded when `max_pending` requests are already admitted, ModelTimeout when a
    reply runs past its deadline (the inner stream is closed, which stops generation), and
    ModelShuttingDown for requests in flight when `abort_all` is called (shutdown).
    Any other exception from the inner model surfaces as ModelError. Its lifecycle (start,
    ready, wait_ready, close) is the inner model's.
    """

    def __init__(self, inner: ChatModel, limits: GuardLimits) -> None:
        super().__init__(inner)
        self.limits = limits
        self.pending = 0
        self._aborted = asyncio.Event()

    def abort_all(self) -> None:
        """Make every admitted and future request fail with ModelShuttingDown."""
        self._aborted.set()

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[str]:
        if self._aborted.is_set():
            raise ModelShuttingDown("the bot is shutting down")
        if self.pending >= self.limits.max_pending:
            raise ModelOverloaded(retry_after=self.limits.retry_after_s)
        self.pending += 1
        deadline = asyncio.get_running_loop().time() + self.limits.deadline_s
        try:
            # The deadline bounds each wait for a piece, never the caller's own awaits between
            # pieces: a timeout scope held across `yield` would cancel whatever the caller awaits
            # at that moment, and the deadline would escape as a bare CancelledError.
            async for piece in self._until_aborted(self.inner.stream(messages, params), deadline):
                yield piece
        except TimeoutError:  # the inner model's own timeout
            raise ModelTimeout(f"no complete reply within {self.limits.deadline_s} s") from None
        except (ModelError, GeneratorExit, asyncio.CancelledError):
            raise
        except Exception as error:
            raise ModelError(f"the model failed: {type(error).__name__}") from error
        finally:
            self.pending -= 1

    def supports_tools(self) -> bool:
        """Whether the inner model can call tools now."""
        return supports_tools(self.inner)

    async def call_tools(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, Any]],
        params: GenerationParams,
    ) -> ToolReply:
        """The inner model's `call_tools`, admitted and bounded like `stream`: the deadline
        (ModelTimeout) and `abort_all` (ModelShuttingDown) cancel the call, which stops its
        generation. Raises ToolsUnsupported where the inner model has no tool calls."""
        if not isinstance(self.inner, ToolCallingModel):
            raise ToolsUnsupported(f"the model {self.name} cannot call tools")
        if self._aborted.is_set():
            raise ModelShuttingDown("the bot is shutting down")
        if self.pending >= self.limits.max_pending:
            raise ModelOverloaded(retry_after=self.limits.retry_after_s)
        self.pending += 1
        call = asyncio.ensure_future(self.inner.call_tools(messages, tools, params))
        aborted = asyncio.ensure_future(self._aborted.wait())
        try:
            await asyncio.wait(
                {call, aborted}, timeout=self.limits.deadline_s, return_when=asyncio.FIRST_COMPLETED
            )
            if call.done():
                return call.result()
            if aborted.done():
                raise ModelShuttingDown("the bot is shutting down")
            raise ModelTimeout(f"no complete reply within {self.limits.deadline_s} s")
        except (ModelError, asyncio.CancelledError):
            raise
        except Exception as error:
            raise ModelError(f"the model failed: {type(error).__name__}") from error
        finally:
            self.pending -= 1
            aborted.cancel()
            if not call.done():
                call.cancel()
                with contextlib.suppress(BaseException):
                    await call

    async def _until_aborted(
        self, pieces: AsyncIterator[str], deadline: float
    ) -> AsyncIterator[str]:
        """Yield from `pieces` until they end, `abort_all` is called (ModelShuttingDown) or the
        loop's clock reaches `deadline` (ModelTimeout); always close `pieces`.

        Each piece is awaited in its own task so that an abort, the deadline (or the caller's
        cancellation) can interrupt a backend that is stuck between pieces. Time the caller
        spends between pieces counts towards the deadline, and a deadline that passed meanwhile
        is raised at the next request for a piece.
        """
        loop = asyncio.get_running_loop()
        iterator = aiter(pieces)
        aborted = asyncio.ensure_future(self._aborted.wait())
        next_piece: asyncio.Future[str] | None = None
        try:
            while True:
                if self._aborted.is_set():
                    raise ModelShuttingDown("the bot is shutting down")
                if loop.time() >= deadline:
                    raise ModelTimeout(f"no complete reply within {self.limits.deadline_s} s")
                next_piece = asyncio.ensure_future(anext(iterator))
                await asyncio.wait(
                    {next_piece, aborted},
                    timeout=deadline - loop.time(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not next_piece.done():
                    if self._aborted.is_set():
                        raise ModelShuttingDown("the bot is shutting down")
                    raise ModelTimeout(f"no complete reply within {self.limits.deadline_s} s")
                try:
                    piece = next_piece.result()
                except StopAsyncIteration:
                    return
                next_piece = None
                yield piece
        finally:
            aborted.cancel()
            if next_piece is not None and not next_piece.done():
                next_piece.cancel()
                with contextlib.suppress(BaseException):
                    await next_piece
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()
