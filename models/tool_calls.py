"""Tool calls as model families write them, read into one form, and tools as the OpenAI API
and chat templates take them.

Formats: Hermes / Qwen (`<tool_call>{"name": …, "arguments": {…}}</tool_call>`, one or more),
Llama 3.1+ (the reply is one JSON object `{"name": …, "parameters": {…}}`, perhaps after
`<|python_tag|>`), Mistral (`[TOOL_CALLS] [{"name": …, "arguments": {…}}, …]`, or the newer
`[TOOL_CALLS]name[ARGS]{…}`), and the OpenAI API's `tool_calls`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: dict[str, Any]


_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_MISTRAL_ARGS = re.compile(r"\[TOOL_CALLS\]\s*([\w.-]+)\s*\[ARGS\]\s*(\{.*\})", re.DOTALL)


def _call(obj: object) -> ParsedCall | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    arguments = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(arguments, str):  # the OpenAI API sends them as a JSON string
        try:
            arguments = json.loads(arguments or "{}")
        except ValueError:
            return None
    return ParsedCall(obj["name"], arguments) if isinstance(arguments, dict) else None


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


def parse_tool_calls(text: str) -> list[ParsedCall]:
    """The tool calls in a model's reply, in any of the formats above; [] when it has none
    (or they are not well-formed: a call is never guessed)."""
    stripped = text.strip()
    if "<tool_call>" in stripped:
        calls = [_call(_json(body)) for body in _HERMES.findall(stripped)]
        return [c for c in calls if c is not None]
    if stripped.startswith("[TOOL_CALLS]"):
        named = _MISTRAL_ARGS.match(stripped)
        if named:
            arguments = _json(named.group(2))
            return [ParsedCall(named.group(1), arguments)] if isinstance(arguments, dict) else []
        listed = _json(stripped[len("[TOOL_CALLS]") :].strip())
        items = listed if isinstance(listed, list) else [listed]
        return [c for c in (_call(item) for item in items) if c is not None]
    if stripped.startswith("[{") and stripped.endswith("]"):
        # Mistral's list after its [TOOL_CALLS] marker, a special token that decoding drops
        listed = _json(stripped)
        items = listed if isinstance(listed, list) else []
        calls = [_call(item) for item in items]
        return [c for c in calls if c is not None] if None not in calls else []
    stripped = stripped.removeprefix("<|python_tag|>").strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        call = _call(_json(stripped))
        return [call] if call is not None else []
    return []


def openai_tool(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A tool as the OpenAI API's `tools` (and chat templates' `tools=`) take it."""
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": schema},
    }


def openai_tool_calls(message: dict[str, Any]) -> list[ParsedCall]:
    """The calls of an OpenAI chat completion's `message.tool_calls`."""
    calls = []
    for item in message.get("tool_calls") or []:
        call = _call((item or {}).get("function"))
        if call is not None:
            calls.append(call)
    return calls
