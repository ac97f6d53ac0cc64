"""How the model server ends an answer: the finish reason and token usage of a finished reply,
and the HTTP status (and body) of a typed model error."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from models.api import (
    ChatMessage,
    ChatModel,
    ModelError,
    ModelOverloaded,
    ModelTimeout,
    ModelUnavailable,
    PromptTooLong,
)
from models.serving.openai_wire import ChatRequest, model_error_body, usage


def finish_and_usage(model: ChatModel, chat: ChatRequest, text: str) -> tuple[str, dict[str, int]]:
    """finish_reason and token usage of a finished reply. The reply's tokens are counted by
    re-tokenising its text (the model's pieces are not tokens), so both are close estimates.
    CPU work (three chat templates and tokenisations): callers run it off the event loop."""
    prompt_tokens = _count(model, chat.messages)
    reply_tokens = _count(model, [ChatMessage("assistant", text)]) - _count(
        model, [ChatMessage("assistant", "")]
    )
    reply_tokens = max(reply_tokens, 0)
    finish = "length" if reply_tokens >= chat.params.max_new_tokens else "stop"
    return finish, usage(prompt_tokens, reply_tokens)


def _count(model: ChatModel, messages: Sequence[ChatMessage]) -> int:
    try:
        return model.count_tokens(messages)
    except ModelError:  # some chat templates reject a lone assistant message: count nothing
        return 0


def model_error_response(error: ModelError) -> web.Response:
    headers: dict[str, Any] = {}
    if isinstance(error, ModelOverloaded):
        status = 429
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    elif isinstance(error, ModelTimeout):
        status = 504
    elif isinstance(error, PromptTooLong):
        status = 400
    elif isinstance(error, ModelUnavailable):
        status = 503
    else:
        status = 500
    return web.json_response(model_error_body(error), status=status, headers=headers)
