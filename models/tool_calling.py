"""Asking a model for tool calls: an optional capability beside ChatModel.

A model that can call tools natively (an in-process model whose chat template takes `tools`, a
remote OpenAI-compatible server that answers `tool_calls`) offers `supports_tools()` and
`call_tools()`. Tools go in as the OpenAI API writes them (models/tool_calls.py `openai_tool`);
the reply is either calls (a name and a JSON object of arguments, only for tools offered) or
plain text. Malformed calls are never guessed: the reply is then text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from models.api import ChatMessage, GenerationParams, ModelError
from models.tool_calls import ParsedCall, parse_tool_calls


class ToolsUnsupported(ModelError):
    """The model cannot call tools (its chat template takes none, or its server refused
    `tools`): route by meaning instead."""


@dataclass(frozen=True)
class ToolReply:
    """The model's answer to a request with tools: `calls` in the order written (empty when it
    answered in words), and `text`, its words ("" when it called tools)."""

    calls: tuple[ParsedCall, ...] = ()
    text: str = ""


@runtime_checkable
class ToolCallingModel(Protocol):
    def supports_tools(self) -> bool:
        """Whether `call_tools` can work now (False while a model loads). Cheap, no I/O."""
        ...

    async def call_tools(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, Any]],
        params: GenerationParams,
    ) -> ToolReply:
        """The model's reply to `messages` with `tools` offered. Raises ToolsUnsupported, or
        the ModelError subclasses `stream` raises."""
        ...


def tool_names(tools: Sequence[dict[str, Any]]) -> set[str]:
    """The names of tools in the OpenAI form."""
    return {str((tool.get("function") or {}).get("name")) for tool in tools}


def reply_of(calls: Sequence[ParsedCall], text: str, tools: Sequence[dict[str, Any]]) -> ToolReply:
    """A ToolReply keeping only calls of the tools offered; with none left, the reply is text."""
    offered = tool_names(tools)
    kept = tuple(call for call in calls if call.name in offered)
    return ToolReply(kept, "") if kept else ToolReply((), text)


def reply_from_text(text: str, tools: Sequence[dict[str, Any]]) -> ToolReply:
    """A generated reply read in any model family's format (models/tool_calls.py)."""
    return reply_of(parse_tool_calls(text), text, tools)


def supports_tools(model: object) -> bool:
    """Whether `model` can call tools now."""
    return isinstance(model, ToolCallingModel) and model.supports_tools()
