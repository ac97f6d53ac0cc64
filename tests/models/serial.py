"""What the engines are compared with: plain serial `generate` on the tiny model."""

from __future__ import annotations

import threading
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.api import ChatMessage, GenerationParams
from models.chat_template import ChatTemplate
from models.hf import generate_reply
from models.loading import load_pretrained

Loaded = tuple[PreTrainedModel, PreTrainedTokenizerBase]


def chat(question: str) -> list[ChatMessage]:
    return [ChatMessage("system", "You are a test bot."), ChatMessage("user", question)]


def load_float64(model_dir: Path, cache_dir: Path) -> Loaded:
    """The tiny model in float64: batched (padded) and single-sequence arithmetic then agree to
    ~1e-15, so greedy choices cannot flip between them and replies can be compared exactly."""
    model, tokenizer = load_pretrained(str(model_dir), cache_dir=cache_dir)
    return model.to(torch.float64), tokenizer


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
