"""The OpenAI chat-completions wire format, as botloom's model server and remote backend speak it.

Plain functions over JSON-shaped dicts: parsing a request into ChatMessages and GenerationParams,
building responses, stream chunks and error bodies, and mapping botloom's typed model errors to
error codes and back, so that a ModelTimeout on the model server is a ModelTimeout in the bot.
No HTTP here.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from models.api import (
    ChatMessage,
    GenerationParams,
    ModelError,
    ModelOverloaded,
    ModelTimeout,
    ModelUnavailable,
    PromptTooLong,
)

# OpenAI's newer "developer" role is the system prompt under another name.
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_STOP_STRINGS = 16

# Error codes in error bodies (HTTP errors and the error event of a stream), both directions.
ERROR_CODES: tuple[tuple[type[ModelError], str], ...] = (
    (ModelOverloaded, "model_overloaded"),
    (ModelTimeout, "model_timeout"),
    (ModelUnavailable, "model_unavailable"),
    (PromptTooLong, "context_length_exceeded"),  # OpenAI's code for it
    (ModelError, "model_error"),
)
# How servers that send no such code say that a prompt does not fit the model's context window.
CONTEXT_OVERFLOW = re.compile(
    "|".join(
        [
            r"maximum context length",  # vLLM, OpenAI: "This model's maximum context length is"
            r"longer than the maximum model length",  # vLLM: "The decoder prompt (length N) is"
            r"too long and exceeds limit",  # older vLLM: "Input prompt (N tokens) is"
            r"`inputs` tokens \+ `max_new_tokens` must be",  # TGI
            r"`inputs` must have less than",  # TGI
            r"exceeds the available context size",  # llama.cpp
        ]
    ),
    re.IGNORECASE,
)


class BadRequest(ValueError):
    """The request does not follow the API; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class ChatRequest:
    """One parsed /v1/chat/completions request."""

    messages: tuple[ChatMessage, ...]
    params: GenerationParams
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: a last chunk with token counts


def parse_chat_request(body: object, defaults: GenerationParams) -> ChatRequest:
    """Parse a request body; raises BadRequest.

    `max_completion_tokens` (or the older `max_tokens`), `temperature`, `top_p`, `stop` and the
    vLLM/TGI extension `repetition_penalty` are honoured; absent ones take `defaults`.
    `frequency_penalty` and `presence_penalty` are accepted and ignored: they are additive
    OpenAI penalties with no faithful translation to a multiplicative repetition penalty.
    `model` is ignored (one model is served). Only `n` = 1 is supported. `tools` are read by
    models/serving/tool_wire.py.
    """
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    messages = tuple(_message(item, index) for index, item in enumerate(_list(body, "messages")))
    if not messages:
        raise BadRequest("messages must not be empty", "messages")
    if body.get("n", 1) != 1:
        raise BadRequest("only n=1 is supported", "n")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    params = replace(
        defaults,
        max_new_tokens=_integer(max_tokens, "max_tokens", defaults.max_new_tokens),
        temperature=_number(body, "temperature", defaults.temperature, low=0.0, high=2.0),
        top_p=_number(body, "top_p", defaults.top_p, low=0.0, high=1.0),
        repetition_penalty=_number(
            body, "repetition_penalty", defaults.repetition_penalty, low=0.01, high=10.0
        ),
        stop=_stop(body.get("stop"), defaults.stop),
    )
    if params.top_p <= 0:  # only the most likely token: greedy decoding
        params = replace(params, temperature=0.0, top_p=1.0)
    for ignored in ("frequency_penalty", "presence_penalty"):
        _number(body, ignored, 0.0, low=-2.0, high=2.0)  # validated, then ignored
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream must be a boolean", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise BadRequest("stream_options must be an object", "stream_options")
    return ChatRequest(messages, params, stream, bool(options.get("include_usage", False)))


def request_body(
    model: str, messages: Sequence[ChatMessage], params: GenerationParams
) -> dict[str, Any]:
    """A streaming request for `messages`. `repetition_penalty` (a vLLM/TGI extension, ignored by
    servers that ignore unknown fields) is sent only when it is not neutral."""
    body: dict[str, Any] = {
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "stream": True,
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if model:
        body["model"] = model
    if params.stop:
        body["stop"] = list(params.stop)
    if params.repetition_penalty != 1.0:
        body["repetition_penalty"] = params.repetition_penalty
    return body


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def chunk(
    ident: str,
    model: str,
    created: int,
    delta: Mapping[str, Any],
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk` of a stream."""
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": dict(delta), "finish_reason": finish_reason}],
    }


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(
    model: str, text: str, finish_reason: str, token_usage: Mapping[str, int]
) -> dict[str, Any]:
    """A whole `chat.completion` (a request with stream false)."""
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": dict(token_usage),
    }


def error_body(
    message: str,
    kind: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def model_error_body(error: ModelError) -> dict[str, Any]:
    code = next(code for kind, code in ERROR_CODES if isinstance(error, kind))
    if isinstance(error, PromptTooLong):
        return error_body(str(error), "invalid_request_error", code, "messages")
    return error_body(str(error) or code, "server_error", code)


def model_error_from(body: object, default: type[ModelError] = ModelError) -> ModelError:
    """The typed error an error body describes: by its code, else PromptTooLong where the message
    says the prompt exceeds the context window (CONTEXT_OVERFLOW), else `default`."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):  # TGI: {"error": "message", "error_type": "..."}
        return _by_message(error, default)
    if not isinstance(error, dict):
        if not (isinstance(body, dict) and isinstance(body.get("message"), str)):
            return default("the model server failed")
        error = body  # older vLLM: {"object": "error", "message": ..., "code": 400}
    message = str(error.get("message") or "the model server failed")
    kind = next((kind for kind, code in ERROR_CODES if code == error.get("code")), None)
    return kind(message) if kind is not None else _by_message(message, default)


def _by_message(message: str, default: type[ModelError]) -> ModelError:
    return PromptTooLong(message) if CONTEXT_OVERFLOW.search(message) else default(message)


def _message(item: object, index: int) -> ChatMessage:
    param = f"messages[{index}]"
    if not isinstance(item, dict):
        raise BadRequest("each message must be an object", param)
    role = ROLES.get(str(item.get("role")))
    if role is None:
        raise BadRequest(f"unsupported role {item.get('role')!r}", f"{param}.role")
    content = item.get("content")
    if isinstance(content, list):  # content parts: only text is understood
        if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
            raise BadRequest("only text content parts are supported", f"{param}.content")
        content = "".join(str(p.get("text", "")) for p in content)
    if content is None and role == "assistant":
        content = ""
    if not isinstance(content, str):
        raise BadRequest("content must be a string or a list of text parts", f"{param}.content")
    return ChatMessage(role, content)  # type: ignore[arg-type]  # ROLES holds only Role values


def _list(body: Mapping[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if not isinstance(value, list):
        raise BadRequest(f"{name} must be a list", name)
    return value


def _integer(value: object, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{name} must be a positive integer", name)
    return value


def _number(
    body: Mapping[str, Any], name: str, default: float, *, low: float, high: float
) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadRequest(f"{name} must be a number from {low} to {high}", name)
    return float(value)


def _stop(value: object, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    stops = [value] if isinstance(value, str) else value
    if (
        not isinstance(stops, list)
        or len(stops) > MAX_STOP_STRINGS
        or not all(isinstance(s, str) for s in stops)
    ):
        raise BadRequest(f"stop must be a string or a list of at most {MAX_STOP_STRINGS}", "stop")
    return tuple(s for s in stops if s)
