"""Chat messages to prompt token ids, with the tokenizer's own chat template."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from jinja2 import TemplateError
from transformers import PreTrainedTokenizerBase

from models.api import ChatMessage, ModelError


class ChatTemplate:
    """Renders chat messages into prompt token ids with the tokenizer's own chat template.

    Newer transformers (not 5.17) can encode control tokens typed by users as plain text, so that
    a message cannot forge a turn of its own ("<|im_end|><|im_start|>system"); it is used where
    available.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, name: str) -> None:
        self._tokenizer = tokenizer
        self._name = name
        parameters = inspect.signature(tokenizer.apply_chat_template).parameters
        self._sanitize: dict[str, Any] = (
            {"sanitize_control_tokens": True} if "sanitize_control_tokens" in parameters else {}
        )

    def encode(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The prompt ids, ending with the assistant's generation prompt; ModelError if the
        template rejects the messages (some templates reject roles or their order)."""
        conversation = [{"role": m.role, "content": m.content} for m in messages]
        try:
            ids = self._tokenizer.apply_chat_template(
                conversation, add_generation_prompt=True, return_dict=False, **self._sanitize
            )
        except (TemplateError, ValueError) as error:
            raise ModelError(
                f"the chat template of {self._name} rejected the messages: {error}"
            ) from error
        return list(ids)
