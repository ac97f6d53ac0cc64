"""What the ChatModels over a loaded transformers model share (the serial model in hf.py and the
batching engine): the name, the context window, the tokens that end a reply, the chat template,
and tool calls where the chat template takes `tools` (models/tool_calling.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.api import ChatMessage, GenerationParams, ReadyLifecycle
from models.chat_template import ChatTemplate
from models.loading import context_window_of, eos_token_ids
from models.tool_calling import ToolReply, ToolsUnsupported, reply_from_text


class LoadedChatModel(ReadyLifecycle):
    """`context_window` defaults to the model's `max_position_embeddings`; `stop_token_ids` to
    the model's and tokenizer's EOS tokens. The model is loaded already, so it is ready once
    constructed (ReadyLifecycle); subclasses' `close` ends their worker threads."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str,
        context_window: int | None = None,
        stop_token_ids: Sequence[int] | None = None,
    ) -> None:
        self._tokenizer = tokenizer
        self._name = name
        self._context_window = context_window_of(model, context_window)
        self.stop_token_ids = (
            tuple(stop_token_ids) if stop_token_ids is not None else eos_token_ids(model, tokenizer)
        )
        self._template = ChatTemplate(tokenizer, name)
        self._takes_tools = self._template.accepts_tools()  # here, in the loading thread

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_window(self) -> int:
        return self._context_window

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Prompt length in tokens; ModelError if the chat template rejects the messages."""
        return len(self._template.encode(messages))

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[str]:
        """The reply to `messages`, piece by piece (see the subclass's `_stream`)."""
        return self._stream(partial(self._template.encode, messages), params)

    def supports_tools(self) -> bool:
        """Whether the chat template writes `tools` into the prompt (found once, on loading)."""
        return self._takes_tools

    async def call_tools(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, Any]],
        params: GenerationParams,
    ) -> ToolReply:
        """Generate with `tools` in the prompt (the chat template's own tool format), then read
        the calls in the model family's format (Hermes/Qwen, Llama 3, Mistral). Raises
        ToolsUnsupported when the template takes no tools, else what `stream` raises."""
        if not self.supports_tools():
            raise ToolsUnsupported(f"the chat template of {self._name} takes no tools")
        prompt = partial(self._template.encode, messages, tools)
        text = "".join([piece async for piece in self._stream(prompt, params)])
        return reply_from_text(text, tools)

    def _stream(
        self, prompt: Callable[[], list[int]], params: GenerationParams
    ) -> AsyncIterator[str]:
        """The reply to the prompt ids `prompt()` gives (called off the event loop)."""
        raise NotImplementedError
