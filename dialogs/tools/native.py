"""Choosing a tool with a model that calls tools itself: the model gets the MCP tools natively
(the chat template's `tools` in process, the OpenAI `tools` field of a remote server), and its
first call of an offered tool, with arguments that fit the tool's schema, is the choice. A reply
in words chooses no tool. Where the model cannot call tools (the embedded 135M default, whose
template takes none; a server that rejects `tools`), each turn goes to the router by meaning
(dialogs/tools/routing.py). Approvals, the runner and the audit are the tool stage's: this only
chooses."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from dialogs.tools.api import ToolSpec
from dialogs.tools.arguments import valid_arguments
from dialogs.tools.dates import normalise_dates
from dialogs.tools.routing import Routed, ToolChooser
from models import ChatMessage, GenerationParams, ModelError
from models.tool_calling import ToolCallingModel, ToolReply, ToolsUnsupported, supports_tools
from models.tool_calls import openai_tool

logger = logging.getLogger(__name__)

TOOL_PARAMS = GenerationParams(max_new_tokens=256, temperature=0.0, repetition_penalty=1.0)


def tool_prompt(text: str, previous: str, today: date) -> list[ChatMessage]:
    system = (
        f"Today is {today:%A} {today.isoformat()}. Call a tool when the user's message asks "
        "for something one of the tools does, with arguments taken from the user's words; "
        "otherwise answer without calling a tool."
    )
    if previous:
        system += f"\nThe user's previous message, for context: {previous}"
    return [ChatMessage("system", system), ChatMessage("user", text)]


def offered(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The tools in the OpenAI form; of tools of the same name on two servers, the first."""
    seen: dict[str, dict[str, Any]] = {}
    for tool in tools:
        seen.setdefault(tool.name, openai_tool(tool.name, tool.description, tool.input_schema))
    return list(seen.values())


class NativeToolRouter:
    """Chooses at most one tool for a message by asking `model` for tool calls; the meaning
    router (`fallback`) wherever the model cannot call tools now."""

    def __init__(
        self,
        model: ToolCallingModel,
        fallback: ToolChooser,
        *,
        params: GenerationParams = TOOL_PARAMS,
        today: Callable[[], date] = date.today,
    ) -> None:
        self._model = model
        self._fallback = fallback
        self._params = params
        self._today = today

    async def choose_in_context(
        self, text: str, previous: str, tools: Sequence[ToolSpec]
    ) -> Routed:
        """The tool the model calls for `text` (the user's `previous` message given as
        context), with the arguments it gave that fit the tool; no tool for a reply in words,
        a call of a tool not offered, or a model error."""
        if not tools:
            return Routed(None, 0.0)
        if not supports_tools(self._model):
            return await self._fallback.choose_in_context(text, previous, tools)
        try:
            reply = await self._ask(tool_prompt(text, previous, self._today()), tools)
        except ToolsUnsupported:
            return await self._fallback.choose_in_context(text, previous, tools)
        except ModelError as error:
            logger.warning("the model could not choose a tool: %s", type(error).__name__)
            return Routed(None, 0.0)
        return self._first_call(reply, tools, f"{previous}\n{text}")

    async def fill(self, tool: ToolSpec, text: str, known: dict[str, Any] | None = None) -> Routed:
        """`tool`'s arguments from `text` (the model offered this tool alone), over `known`."""
        if not supports_tools(self._model):
            return await self._fallback.fill(tool, text, known)
        try:
            reply = await self._ask(tool_prompt(text, "", self._today()), [tool])
        except ToolsUnsupported:
            return await self._fallback.fill(tool, text, known)
        except ModelError as error:
            logger.warning("the model could not fill a tool's arguments: %s", type(error).__name__)
            reply = ToolReply()
        routed = self._first_call(reply, [tool], text)
        arguments = {**(known or {}), **routed.arguments}
        missing = [name for name in tool.required if name not in arguments]
        return Routed(tool, 1.0, arguments, missing, filled=True)

    async def _ask(self, messages: list[ChatMessage], tools: Sequence[ToolSpec]) -> ToolReply:
        return await self._model.call_tools(messages, offered(tools), self._params)

    def _first_call(self, reply: ToolReply, tools: Sequence[ToolSpec], text: str) -> Routed:
        """The first call of an offered tool, its arguments checked against the tool's schema
        and the user's words (dates written out first, as the model may have)."""
        written = normalise_dates(text, self._today())
        for call in reply.calls:
            tool = next((t for t in tools if t.name == call.name), None)
            if tool is None:
                continue
            arguments, missing = valid_arguments(call.arguments, tool.input_schema, written)
            dropped = sorted(set(call.arguments) - set(arguments))
            if dropped:
                logger.info("dropped arguments of %s that do not fit: %s", tool.name, dropped)
            return Routed(tool, 1.0, arguments, missing, filled=True)
        return Routed(None, 0.0)
