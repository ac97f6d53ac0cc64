"""The OpenAI API's tool fields, as botloom's model server and remote backend speak them: a
request's `tools` and `tool_choice` read and checked, a request offering tools, and a completion
(or a stream's chunks) whose message carries `tool_calls`. No HTTP here."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from models.api import ChatMessage, GenerationParams
from models.serving.openai_wire import (
    BadRequest,
    chunk,
    completion,
    completion_id,
    error_body,
    request_body,
)
from models.tool_calls import ParsedCall

MAX_TOOLS = 128
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def parse_tools(body: object) -> tuple[dict[str, Any], ...]:
    """The `tools` of a request body (a JSON object) to offer the model: functions in the
    OpenAI form with `tool_choice` "auto" (the default); none with "none". "required", a named
    function, or a malformed tool is a BadRequest; `parallel_tool_calls` is ignored."""
    if not isinstance(body, dict):
        return ()
    tools = body.get("tools")
    if tools is None:
        return ()
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        raise BadRequest(f"tools must be a list of at most {MAX_TOOLS} functions", "tools")
    choice = body.get("tool_choice", "auto")
    if choice not in ("auto", "none"):
        raise BadRequest('only tool_choice "auto" and "none" are supported', "tool_choice")
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(function, dict)
            or tool.get("type") != "function"
            or not TOOL_NAME.match(str(function.get("name", "")))
            or not isinstance(function.get("parameters", {}), dict)
            or not isinstance(function.get("description", ""), str)
        ):
            raise BadRequest(
                'each tool must be {"type": "function", "function": {"name", "description",'
                ' "parameters"}} with a name of letters, digits, "_", "-" or "."',
                f"tools[{index}]",
            )
    return tuple(tools) if choice == "auto" else ()


def tool_calls_field(calls: Sequence[ParsedCall]) -> list[dict[str, Any]]:
    """`tool_calls` as the API writes them: ids, type "function", the arguments a JSON string."""
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {
                "name": call.name,
                "arguments": json.dumps(call.arguments, ensure_ascii=False),
            },
        }
        for call in calls
    ]


def tool_completion(
    model: str, calls: Sequence[ParsedCall], token_usage: Mapping[str, int]
) -> dict[str, Any]:
    """A whole `chat.completion` whose message calls tools; finish_reason "tool_calls"."""
    body = completion(model, "", "tool_calls", token_usage)
    message = {"role": "assistant", "content": None, "tool_calls": tool_calls_field(calls)}
    body["choices"][0]["message"] = message
    return body


def tool_chunks(
    model: str,
    calls: Sequence[ParsedCall],
    text: str,
    finish: str,
    token_usage: Mapping[str, int] | None,
) -> list[dict[str, Any]]:
    """A reply to a streamed request with tools, as the stream's chunks: the whole reply in one
    delta (`tool_calls` items with an `index`, or the text; it is read whole, as tool-call
    parsers need), then the finish reason, then the usage where asked for."""
    ident, created = completion_id(), int(time.time())
    delta: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        items = [{"index": i, **item} for i, item in enumerate(tool_calls_field(calls))]
        delta = {"role": "assistant", "content": None, "tool_calls": items}
        finish = "tool_calls"
    chunks = [chunk(ident, model, created, delta), chunk(ident, model, created, {}, finish)]
    if token_usage is not None:
        chunks.append({**chunk(ident, model, created, {}), "choices": [], "usage": token_usage})
    return chunks


def tool_request_body(
    model: str,
    messages: Sequence[ChatMessage],
    tools: Sequence[dict[str, Any]],
    params: GenerationParams,
) -> dict[str, Any]:
    """A non-streaming request offering `tools` (the OpenAI form), the model to choose."""
    return {
        **request_body(model, messages, params),
        "stream": False,
        "tools": list(tools),
        "tool_choice": "auto",
    }


def tools_unsupported_body(name: str) -> dict[str, Any]:
    """The 400's body for tools offered to a model that cannot call them."""
    return error_body(
        f"the model {name} cannot call tools (its chat template takes none)",
        param="tools",
        code="tools_unsupported",
    )
