"""A ChatModel over any OpenAI-compatible server, for bench/peers.py: streams chat completions
and records each reply's completion tokens (the server's `usage`; re-tokenised reply text where a
server sends none, as llama-cpp-python's does not when streaming) and its first and last piece."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from models.api import ChatMessage, GenerationParams, ModelError
from models.chat_template import ChatTemplate


@dataclass
class Reply:
    tokens: int
    first_s: float  # perf_counter of the first piece
    last_s: float
    counted: bool = False  # tokens re-tokenised here, not the server's usage


@dataclass
class OpenAIClient:
    """`extra`: request fields the server needs for the same sampling (llama.cpp's
    `repeat_penalty`; vLLM and botloom read `repetition_penalty`)."""

    url: str
    tokenizer: Any
    session: aiohttp.ClientSession
    api_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    replies: list[Reply] = field(default_factory=list)
    name: str = "server"
    context_window: int = 8192

    @property
    def tokens_generated(self) -> int:
        return sum(r.tokens for r in self.replies)

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return len(ChatTemplate(self.tokenizer, self.name).encode(messages))

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncGenerator[str, None]:
        body = {
            "model": "default",
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": 1.0,
            "repetition_penalty": params.repetition_penalty,
            "stream": True,
            "stream_options": {"include_usage": True},
            **self.extra,
        }
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        first = last = 0.0
        tokens = 0
        pieces: list[str] = []
        async with self.session.post(
            f"{self.url}/v1/chat/completions", json=body, headers=headers
        ) as response:
            if response.status != 200:
                raise ModelError(f"{response.status}: {(await response.text())[:200]}")
            async for raw in response.content:
                line = raw.decode().strip()
                if not line.startswith("data:") or line == "data: [DONE]":
                    continue
                event = json.loads(line[5:])
                if event.get("usage"):
                    tokens = int(event["usage"].get("completion_tokens", 0))
                for choice in event.get("choices") or ():
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        last = time.perf_counter()
                        first = first or last
                        pieces.append(piece)
                        yield piece
        counted = not tokens and bool(pieces)
        if counted:
            tokens = len(self.tokenizer.encode("".join(pieces), add_special_tokens=False))
        self.replies.append(Reply(tokens, first, last, counted))


def generating_tok_s(replies: Sequence[Reply]) -> float:
    """Median over replies of (tokens - 1) / (last piece - first piece): the speed a user sees
    once the reply has started."""
    rates = sorted(
        (r.tokens - 1) / (r.last_s - r.first_s)
        for r in replies
        if r.tokens > 1 and r.last_s > r.first_s
    )
    return rates[len(rates) // 2] if rates else 0.0
