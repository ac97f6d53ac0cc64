"""A deterministic ChatModel for tests and demos: it echoes, records prompts, and can misbehave."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from models.api import ChatMessage, GenerationParams, ModelError, ReadyLifecycle
from models.tool_calling import ToolReply, ToolsUnsupported, reply_from_text

# What a fake model that can call tools writes, given the prompt and the tools offered: text in
# any model family's tool-call format (a Hermes `<tool_call>` block), read as a real reply is.
ToolText = Callable[[Sequence[ChatMessage], Sequence[dict[str, Any]]], str]

TOKENS_PER_MESSAGE = 3  # role markers, like a chat template's


class FakeChatModel(ReadyLifecycle):
    """Replies ``"fake: <last user message>"`` one word at a time.

    `reply` overrides the text (a function of the prompt); `delay` sleeps before each piece;
    `fail_after` raises `error` after that many pieces; `hang` never produces a piece.
    `tool_text` makes it call tools (`call_tools` reads what it returns as a generated reply;
    it raises `error` whenever `fail_after` is set, and never returns with `hang`); without it,
    it cannot. Every prompt is recorded in `prompts` (with tools: also the tools, in
    `tool_requests`); `pieces_produced` counts pieces actually generated.
    Tokens are whitespace-separated words plus a few per message. Ready once constructed; it
    holds nothing to close (ReadyLifecycle).
    """

    def __init__(
        self,
        *,
        reply: Callable[[Sequence[ChatMessage]], str] | None = None,
        delay: float = 0.0,
        fail_after: int | None = None,
        error: Exception | None = None,
        hang: bool = False,
        context_window: int = 2048,
        tool_text: ToolText | None = None,
    ) -> None:
        self._reply = reply or _echo
        self.delay = delay
        self.fail_after = fail_after
        self.error = error or ModelError("fake model failure")
        self.hang = hang
        self._context_window = context_window
        self.prompts: list[list[ChatMessage]] = []
        self.pieces_produced = 0
        self.tool_text = tool_text
        self.tool_requests: list[list[dict[str, Any]]] = []

    @property
    def name(self) -> str:
        return "fake"

    @property
    def context_window(self) -> int:
        return self._context_window

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return sum(len(m.content.split()) + TOKENS_PER_MESSAGE for m in messages)

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[str]:
        self.prompts.append(list(messages))
        if self.hang:
            await asyncio.Event().wait()
        words = self._reply(messages).split(" ")[: params.max_new_tokens]
        for index, word in enumerate(words):
            if self.fail_after is not None and index >= self.fail_after:
                raise self.error
            if self.delay:
                await asyncio.sleep(self.delay)
            self.pieces_produced += 1
            yield word if index == 0 else " " + word

    def supports_tools(self) -> bool:
        return self.tool_text is not None

    async def call_tools(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, Any]],
        params: GenerationParams,
    ) -> ToolReply:
        if self.tool_text is None:
            raise ToolsUnsupported("the fake model was given no tool_text")
        self.prompts.append(list(messages))
        self.tool_requests.append(list(tools))
        if self.hang:
            await asyncio.Event().wait()
        if self.fail_after is not None:
            raise self.error
        return reply_from_text(self.tool_text(messages, tools), tools)


FAKE_SPEC = "fake"


def fake_from_spec(spec: str) -> FakeChatModel:
    """`fake` or `fake?delay=0.1&hang=1`: the fake model chosen by a setting (demos, benchmarks,
    process-level tests). Raises ValueError for unknown options."""
    from urllib.parse import parse_qsl

    _, _, query = spec.partition("?")
    options = dict(parse_qsl(query, strict_parsing=bool(query)))
    unknown = set(options) - {"delay", "hang"}
    if unknown:
        raise ValueError(f"unknown fake model options: {', '.join(sorted(unknown))}")
    return FakeChatModel(
        delay=float(options.get("delay", 0)), hang=options.get("hang", "0") not in ("0", "")
    )


def _echo(messages: Sequence[ChatMessage]) -> str:
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    return f"fake: {last_user}"
