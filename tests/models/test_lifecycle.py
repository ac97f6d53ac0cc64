"""ModelLifecycle: every model has start, ready, wait_ready and close; wrappers pass them on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest

from models.api import ChatModel, ModelLifecycle, ModelUnavailable, close_model
from models.deferred import DeferredChatModel
from models.embeddings import EmbeddingModel, HashingEmbeddingModel, HFEmbeddingModel
from models.fake import FakeChatModel
from models.guard import GuardedChatModel, GuardLimits
from models.serving.remote import RemoteChatModel, RemoteOptions


class ClosingFake(FakeChatModel):
    """A fake that counts its closes, synchronously or as a coroutine."""

    def __init__(self, *, closes_async: bool = False) -> None:
        super().__init__()
        self.closed = 0
        self._closes_async = closes_async

    def close(self) -> Awaitable[None] | None:
        if not self._closes_async:
            self.closed += 1
            return None

        async def closing() -> None:
            await asyncio.sleep(0)
            self.closed += 1

        return closing()


@pytest.mark.parametrize(
    "make",
    [
        FakeChatModel,
        lambda: RemoteChatModel(RemoteOptions(url="http://127.0.0.1:9/v1")),
        lambda: GuardedChatModel(FakeChatModel(), GuardLimits()),
    ],
    ids=["fake", "remote", "guarded"],
)
async def test_chat_models_ready_once_constructed_have_a_no_op_lifecycle(
    make: Callable[[], ChatModel],
) -> None:
    model = make()
    assert isinstance(model, ModelLifecycle) and isinstance(model, ChatModel)
    assert model.ready
    model.start()
    assert await model.wait_ready() is None
    assert model.ready
    await close_model(model)


@pytest.mark.parametrize("make", [HashingEmbeddingModel, HFEmbeddingModel], ids=["hashing", "hf"])
async def test_embedding_models_have_the_lifecycle_too(
    make: Callable[[], EmbeddingModel],
) -> None:
    model = make()  # HFEmbeddingModel loads on first use: constructing it loads nothing
    assert isinstance(model, ModelLifecycle) and isinstance(model, EmbeddingModel)
    model.start()
    await model.wait_ready()
    assert model.ready
    await close_model(model)


@pytest.mark.parametrize("closes_async", [False, True])
async def test_close_model_awaits_a_close_that_is_a_coroutine(closes_async: bool) -> None:
    model = ClosingFake(closes_async=closes_async)
    await close_model(model)
    assert model.closed == 1


async def test_a_wrapper_passes_the_lifecycle_to_its_inner_model() -> None:
    release = threading.Event()
    inner_model = ClosingFake()

    def loader() -> ChatModel:
        release.wait(10)
        return inner_model

    deferred = DeferredChatModel(loader, name="slow")
    guarded = GuardedChatModel(deferred, GuardLimits())
    assert not guarded.ready
    guarded.start()
    await asyncio.sleep(0.01)
    assert not guarded.ready
    release.set()
    assert await guarded.wait_ready() is inner_model
    assert guarded.ready and deferred.ready
    await close_model(guarded)
    assert inner_model.closed == 1


async def test_deferred_wait_ready_starts_the_load_and_reports_its_failure() -> None:
    def failing() -> ChatModel:
        raise OSError("no weights")

    deferred = DeferredChatModel(failing, name="broken")
    with pytest.raises(ModelUnavailable, match="broken failed to load"):
        await deferred.wait_ready()  # without start(): wait_ready starts the load itself
    assert not deferred.ready
    await close_model(deferred)  # nothing was loaded: nothing to close


async def test_closing_a_deferred_model_waits_for_its_load_then_closes_it() -> None:
    release = threading.Event()
    loaded = ClosingFake(closes_async=True)

    def loader() -> ChatModel:
        release.wait(10)
        return loaded

    deferred = DeferredChatModel(loader, name="slow")
    deferred.start()
    closing = asyncio.ensure_future(close_model(deferred))
    await asyncio.sleep(0.01)
    assert not closing.done()
    release.set()
    await closing
    assert loaded.closed == 1
