"""The one interface the rest of botloom sees: chat messages in, an async stream of text out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationParams:
    """How to generate one reply.

    temperature 0 means greedy decoding; stop strings end the reply where they first appear
    (the stop string itself is not part of the reply).
    """

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    stop: tuple[str, ...] = field(default_factory=tuple)


class ModelError(Exception):
    """Base of the typed errors a ChatModel raises; the dialog layer turns them into words."""


class PromptTooLong(ModelError):
    """The prompt leaves no room for a reply in the model's context window (the caller's
    mistake: an HTTP API answers 400)."""


class ModelOverloaded(ModelError):
    """Too many requests are waiting; try again after `retry_after` seconds."""

    def __init__(self, message: str = "model overloaded", retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelTimeout(ModelError):
    """The reply did not finish within its deadline."""


class ModelUnavailable(ModelError):
    """The model is not loaded yet, failed to load, or its server cannot be reached."""


class ModelShuttingDown(ModelUnavailable):
    """The process is shutting down; requests in flight are abandoned."""


@runtime_checkable
class ChatModel(Protocol):
    """A chat model: `stream` yields pieces of the reply as they are generated.

    Implementations never block the event loop. Cancelling the consumer of `stream` (or closing
    the iterator) stops generation. Errors are raised as `ModelError` subclasses.
    """

    @property
    def name(self) -> str: ...

    @property
    def context_window(self) -> int:
        """Maximum tokens of prompt plus reply."""
        ...

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Prompt length in tokens, counted with the model's own tokenizer and chat template."""
        ...

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[str]: ...


async def complete(
    model: ChatModel, messages: Sequence[ChatMessage], params: GenerationParams
) -> str:
    """Collect a whole reply from `model.stream`."""
    return "".join([piece async for piece in model.stream(messages, params)])


class WrappedChatModel:
    """A ChatModel around `inner` whose name, context window and token counts are the inner
    model's; subclasses add behaviour around `stream` (admission control, recording)."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self.inner.count_tokens(messages)


async def close_resource(resource: object) -> None:
    """Call `resource.close()` where it has one, awaiting it where it is a coroutine (models,
    storages and indexes close either way)."""
    close = getattr(resource, "close", None)
    if close is not None:
        result = close()
        if hasattr(result, "__await__"):
            await result
