"""What the ChatModels over a loaded transformers model share (the serial model in hf.py and the
batching engine): the name, the context window, the tokens that end a reply, the chat template."""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.api import ChatMessage, ReadyLifecycle
from models.chat_template import ChatTemplate
from models.loading import context_window_of, eos_token_ids


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

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_window(self) -> int:
        return self._context_window

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Prompt length in tokens; ModelError if the chat template rejects the messages."""
        return len(self._template.encode(messages))
