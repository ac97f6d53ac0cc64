"""Admission control, deadlines and shutdown for any ChatModel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

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
        try:
            async with asyncio.timeout(self.limits.deadline_s):
                async for piece in self._until_aborted(self.inner.stream(messages, params)):
                    yield piece
        except TimeoutError:
            raise ModelTimeout(f"no complete reply within {self.limits.deadline_s} s") from None
        except (ModelError, GeneratorExit, asyncio.CancelledError):
            raise
        except Exception as error:
            raise ModelError(f"the model failed: {type(error).__name__}") from error
        finally:
            self.pending -= 1

    async def _until_aborted(self, pieces: AsyncIterator[str]) -> AsyncIterator[str]:
        """Yield from `pieces` until they end or `abort_all` is called; always close `pieces`.

        Each piece is awaited in its own task so that an abort (or the caller's cancellation)
        can interrupt a backend that is stuck between pieces.
        """
        iterator = aiter(pieces)
        aborted = asyncio.ensure_future(self._aborted.wait())
        next_piece: asyncio.Future[str] | None = None
        try:
            while True:
                next_piece = asyncio.ensure_future(anext(iterator))
                await asyncio.wait({next_piece, aborted}, return_when=asyncio.FIRST_COMPLETED)
                if not next_piece.done():
                    raise ModelShuttingDown("the bot is shutting down")
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
