"""The one interface the rest of botloom sees: chat messages in, an async stream of text out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
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
class ModelLifecycle(Protocol):
    """Loading and releasing a model: every ChatModel and EmbeddingModel has these four.

    `start()` begins loading in the background and returns at once (call it on the event loop;
    a second call does nothing). `ready` tells whether the model can serve now. `wait_ready()`
    starts loading if need be and returns once the model is ready, raising ModelUnavailable if it
    failed to load (what it returns is the implementation's: DeferredChatModel's is the model).
    `close()` releases threads, connections and memory; it returns None where that is done at
    once and an awaitable where it awaits (a remote model's HTTP session): `close_model` does
    either. A model that is ready once constructed takes ReadyLifecycle's no-ops.
    """

    def start(self) -> None: ...

    @property
    def ready(self) -> bool: ...

    async def wait_ready(self) -> object: ...

    def close(self) -> Awaitable[None] | None: ...


class ReadyLifecycle:
    """The ModelLifecycle of a model that is ready once constructed: there is nothing to start or
    wait for, `ready` is True, and `close` releases nothing (a subclass that holds a worker
    thread or a connection overrides it)."""

    def start(self) -> None:
        """Nothing to load: the model is ready."""

    @property
    def ready(self) -> bool:
        return True

    async def wait_ready(self) -> None:
        """Nothing to wait for: the model is ready."""

    def close(self) -> Awaitable[None] | None:
        """Nothing to release."""
        return None


async def close_model(model: ModelLifecycle) -> None:
    """`model.close()`, awaited where it returns an awaitable."""
    closing = model.close()
    if closing is not None:
        await closing


@runtime_checkable
class ChatModel(ModelLifecycle, Protocol):
    """A chat model: `stream` yields pieces of the reply as they are generated.

    Implementations never block the event loop. Cancelling the consumer of `stream` (or closing
    the iterator) stops generation. Errors are raised as `ModelError` subclasses. The model's
    lifecycle (start, ready, wait_ready, close) is ModelLifecycle's.
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
    """A ChatModel around `inner` whose name, context window, token counts and lifecycle are the
    inner model's; subclasses add behaviour around `stream` (admission control, recording)."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner

    def start(self) -> None:
        self.inner.start()

    @property
    def ready(self) -> bool:
        return self.inner.ready

    async def wait_ready(self) -> object:
        return await self.inner.wait_ready()

    def close(self) -> Awaitable[None] | None:
        return self.inner.close()

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
    storages and indexes close either way; `resource` may be None, or have no `close`)."""
    close = getattr(resource, "close", None)
    if close is not None:
        result = close()
        if hasattr(result, "__await__"):
            await result
