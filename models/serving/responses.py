"""Reading an OpenAI-compatible server's responses: a refusal as the typed model error it means
(and whether to try again), an event stream (or one JSON completion) as the reply's pieces, and
a completion's `tool_calls` as a ToolReply."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp

from models.api import (
    ModelError,
    ModelOverloaded,
    ModelTimeout,
    ModelUnavailable,
    PromptTooLong,
)
from models.backoff import retry_after_s
from models.serving.openai_wire import model_error_from
from models.tool_calling import ToolReply, reply_from_text, reply_of
from models.tool_calls import openai_tool_calls

DONE = "[DONE]"


class RequestRejected(ModelError):
    """The server rejected the request as it was written (a 4xx other than a prompt too long):
    a field it does not take, such as `tools` on a server without tool calling."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def refusal(response: aiohttp.ClientResponse) -> tuple[ModelError, bool, float | None]:
    """The error a non-200 response means, whether to try again, and the server's Retry-After."""
    async with response:
        try:
            body: object = await response.json(content_type=None)
        except (ValueError, aiohttp.ClientError):
            body = None
    retry_after = retry_after_s(response.headers.get("Retry-After"))
    status = response.status
    if status == 429:
        error = model_error_from(body, ModelOverloaded)
        overloaded = error if isinstance(error, ModelOverloaded) else ModelOverloaded(str(error))
        overloaded.retry_after = retry_after if retry_after is not None else 1.0
        return overloaded, True, retry_after
    if status == 503:
        return model_error_from(body, ModelUnavailable), True, retry_after
    if status in (401, 403):
        return ModelUnavailable(f"the model server refused the API key ({status})"), False, None
    if status == 504:
        return model_error_from(body, ModelTimeout), False, None
    if status >= 500:
        return model_error_from(body, ModelError), False, None
    error = model_error_from(body, ModelError)
    if isinstance(error, PromptTooLong):  # by its code, or what the message says (vLLM, TGI)
        return error, False, None
    return (
        RequestRejected(status, f"the model server rejected the request ({status}): {error}"),
        False,
        None,
    )


async def reply_pieces(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The reply's text pieces from an event stream (or from one JSON completion)."""
    if response.content_type == "application/json":
        yield _content(await response.json())
        return
    data: list[str] = []
    async for raw in response.content:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:  # a blank line ends an event
            event, data = "\n".join(data), []
            if event.strip() == DONE:
                return
            piece = _delta(event)
            if piece:
                yield piece
        # comments (":"), "event:", "id:" and "retry:" lines carry nothing we use
    raise ModelUnavailable("the model server ended the reply without [DONE]")


def _delta(event: str) -> str:
    try:
        payload = json.loads(event)
    except ValueError as error:
        raise ModelError(f"unreadable event from the model server: {event[:80]!r}") from error
    if not isinstance(payload, dict):
        raise ModelError("unreadable event from the model server")
    if "error" in payload:
        raise model_error_from(payload)
    choices = payload.get("choices")  # the usage chunk has none
    first = choices[0] if isinstance(choices, list) and choices else None
    delta = first.get("delta") if isinstance(first, dict) else None
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


def _content(payload: object) -> str:
    try:
        content = payload["choices"][0]["message"]["content"]  # type: ignore[index]
    except (TypeError, LookupError) as error:
        raise ModelError("the model server's reply has no message content") from error
    return str(content or "")


def completion_tool_reply(payload: object, tools: Sequence[dict[str, Any]]) -> ToolReply:
    """A chat.completion's `message.tool_calls` (calls whose arguments are not a JSON object,
    or of tools not offered, dropped); without any, calls written into its text in a model
    family's format (a server that passes `tools` to the template but parses nothing), else its
    text. ModelError when the payload has no message."""
    try:
        message = payload["choices"][0]["message"]  # type: ignore[index]
    except (TypeError, LookupError) as error:
        raise ModelError("the model server's reply has no message") from error
    if not isinstance(message, dict):
        raise ModelError("the model server's reply has no message")
    text = str(message.get("content") or "")
    calls = openai_tool_calls(message)
    return reply_of(calls, text, tools) if calls else reply_from_text(text, tools)
