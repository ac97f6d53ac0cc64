"""The OpenAI API's tool fields, as botloom's model server and remote backend speak them: a
request's `tools` and `tool_choice` read and checked, a request offering tools, and a completion
whose message carries `tool_calls`. No HTTP here."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from models.api import ChatMessage, GenerationParams
from models.serving.openai_wire import BadRequest, completion, error_body, request_body
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


def tool_completion(
    model: str, calls: Sequence[ParsedCall], token_usage: Mapping[str, int]
) -> dict[str, Any]:
    """A whole `chat.completion` whose message calls tools: `tool_calls` with ids, type
    "function" and the arguments as a JSON string; finish_reason "tool_calls"."""
    body = completion(model, "", "tool_calls", token_usage)
    body["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": json.dumps(call.arguments, ensure_ascii=False),
                },
            }
            for call in calls
        ],
    }
    return body


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
