"""What the engines are compared with: plain serial `generate` on the tiny model."""

from __future__ import annotations

import threading

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.api import ChatMessage, GenerationParams
from models.hf import ChatTemplate, generate_reply

Loaded = tuple[PreTrainedModel, PreTrainedTokenizerBase]


def serial_reply(loaded: Loaded, messages: list[ChatMessage], params: GenerationParams) -> str:
    """The reply of models.hf.generate_reply, EOS disabled."""
    model, tokenizer = loaded
    pieces: list[str] = []
    generate_reply(
        model,
        tokenizer,
        ChatTemplate(tokenizer, "tiny").encode(messages),
        params,
        max_new_tokens=params.max_new_tokens,
        stop_token_ids=(),
        emit=pieces.append,
        cancelled=threading.Event(),
    )
    return "".join(pieces)
