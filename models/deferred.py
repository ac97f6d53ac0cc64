"""A ChatModel that loads in the background, so the server starts (and answers /healthz) at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from models.api import ChatMessage, ChatModel, GenerationParams, ModelUnavailable, close_model
from models.tool_calling import ToolCallingModel, ToolReply, ToolsUnsupported, supports_tools

logger = logging.getLogger(__name__)

LOADING = "the model is still loading"


class DeferredChatModel:
    """Wraps a blocking `loader`; until it has finished, calls raise ModelUnavailable.

    Its ModelLifecycle: `start()` runs the loader in a worker thread; `ready` tells whether it
    has finished; `wait_ready()` waits for it, returns the loaded model and re-raises a load
    failure as ModelUnavailable; `close()` waits for a load in progress, then closes the model.
    """

    def __init__(self, loader: Callable[[], ChatModel], name: str) -> None:
        self._loader = loader
        self._name = name
        self._model: ChatModel | None = None
        self._task: asyncio.Task[ChatModel] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._load())
            self._task.add_done_callback(self._loaded)

    async def _load(self) -> ChatModel:
        """The loader in a thread of its own that then ends: the OpenMP threads torch started
        for it end with it. A pool thread would keep them, and with more OpenMP threads than
        cores libgomp stops spinning between parallel regions, which made the engine's decode
        step (in its own thread) much slower (see bench/results/design-measurements.md)."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="botloom-load")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, self._loader)
        finally:
            executor.shutdown(wait=False)

    def _loaded(self, task: asyncio.Task[ChatModel]) -> None:
        if task.cancelled():
            return
        if task.exception() is not None:
            logger.error("model %s failed to load", self._name, exc_info=task.exception())
            return
        self._model = task.result()
        logger.info("model %s loaded", self._name)

    @property
    def ready(self) -> bool:
        return self._model is not None

    async def wait_ready(self) -> ChatModel:
        self.start()
        assert self._task is not None
        try:
            return await asyncio.shield(self._task)
        except Exception as error:
            raise ModelUnavailable(f"the model {self._name} failed to load: {error}") from error

    def _loaded_model(self) -> ChatModel:
        if self._model is None:
            if self._task is not None and self._task.done() and self._task.exception():
                raise ModelUnavailable(f"the model {self._name} failed to load")
            raise ModelUnavailable(LOADING)
        return self._model

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_window(self) -> int:
        return self._model.context_window if self._model is not None else 2048

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self._loaded_model().count_tokens(messages)

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[str]:
        return self._loaded_model().stream(messages, params)

    def supports_tools(self) -> bool:
        """Whether the loaded model can call tools (False while it loads)."""
        return self._model is not None and supports_tools(self._model)

    async def call_tools(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, Any]],
        params: GenerationParams,
    ) -> ToolReply:
        model = self._loaded_model()
        if not isinstance(model, ToolCallingModel):
            raise ToolsUnsupported(f"the model {self._name} cannot call tools")
        return await model.call_tools(messages, tools, params)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            # A load in a worker thread cannot be interrupted; wait for it so the thread ends.
            await asyncio.wait({self._task})
        if self._model is not None:
            await close_model(self._model)
