"""The tool stage of a turn's answer: when the message asks for something a tool does, the tool
is chosen and its arguments filled (by the model's own tool call, dialogs/tools/native.py, or by
meaning, dialogs/tools/routing.py), asked for when the user has not
given them, and the call run through the `ToolRunner` bot/tools implements — at once for a
read-only tool (its result becomes the passage the reply answers from and cites), else after the
user approves (the runner sends the question; the turn ends here). Small talk and general
questions call no tool.

A typed yes/no answers the pending approval (the terminal has no buttons), and a message the
missing arguments of a waiting call, only on the turn right after the bot asked: the question is
kept in conversation state and counts only while it is the last message of the history (any
other answer, or /reset, ends it)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from botbuilder.core import StatePropertyAccessor, TurnContext

from dialogs.answer.stages import TurnDraft
from dialogs.tools.api import ToolCall, ToolOutcome, ToolRunner, ToolSpec
from dialogs.tools.results import tool_passage
from dialogs.tools.routing import Routed, ToolChooser
from models import ChatMessage

logger = logging.getLogger(__name__)

# A typed answer to the pending approval (the terminal's y/n); "ok" alone is too common to count.
YES = frozenset({"y", "yes", "approve", "approved", "yes please", "go ahead", "do it"})
NO = frozenset({"n", "no", "reject", "rejected", "no thanks", "don't", "do not"})


def _words(name: str) -> str:
    return name.replace("_", " ")


def outcome_answer(tool: str, source: str, outcome: ToolOutcome) -> str:
    if outcome.ok:
        return f"Done. {outcome.text}\n\nTool: {source}"
    if outcome.status == "rejected":
        return f"OK, I did not run {tool}."
    if outcome.status == "expired":
        return f"That approval expired, so {tool} was not run."
    if outcome.status == "done":
        return "That was already decided; nothing more was run."
    return f"Sorry, I couldn't use {tool}: {outcome.text}."


def progress_text(call: ToolCall) -> str:
    """What the user sees while `call` runs: 'Looking up order id A-10234 (lookup_order)…'."""
    titles = {
        name: str(schema.get("title") or _words(name)).lower()
        for name, schema in call.tool.properties.items()
    }
    shown = ", ".join(
        f"{titles.get(name, _words(name))} {value}"
        for name, value in call.arguments.items()
        if value not in (None, "")
    )
    verb = "Looking up" if call.tool.read_only else "Running"
    return f"{verb} {shown} ({call.tool.name})…" if shown else f"{verb} {call.tool.name}…"


class ToolStage:
    """Answers with a tool's help, or passes."""

    def __init__(
        self,
        runner: ToolRunner,
        router: ToolChooser,
        waiting: StatePropertyAccessor,
        *,
        turn_timeout_s: float = 45.0,
    ) -> None:
        self._runner = runner
        self._router = router
        # the question the bot just asked: a call's missing arguments, or its approval
        self._questions = waiting
        self._turn_timeout_s = turn_timeout_s

    async def prepare(self, turn_context: TurnContext, draft: TurnDraft) -> None:
        text = draft.text.strip()
        asked = await self._take_question(turn_context, draft.history)
        word = text.lower().strip(" .!")
        if "approval" in asked and (word in YES or word in NO):
            outcome = await self._runner.answer_approval(
                turn_context, word in YES, asked.get("approval")
            )
            if outcome is not None:
                tool = outcome.meta.get("tool", "the tool")
                source = f"{outcome.meta.get('server', '')}/{tool}"
                draft.answer = outcome_answer(tool, source, outcome)
                return
        tools = self._runner.tools()
        try:
            previous = next((m.content for m in reversed(draft.history) if m.role == "user"), "")
            routed = await asyncio.wait_for(
                self._route(text, previous, tools, asked if "tool" in asked else None),
                self._turn_timeout_s,
            )
        except TimeoutError:
            logger.warning("tool routing took longer than %ss", self._turn_timeout_s)
            return
        if routed is None or routed.tool is None:
            return
        tool = routed.tool
        if routed.missing:
            asked_for = " and ".join(_words(name) for name in routed.missing)
            draft.answer = f"To {tool.description[0].lower()}{tool.description[1:].rstrip('.')}, "
            draft.answer += f"I need the {asked_for}. What is it?"
            await self._questions.set(
                turn_context,
                {
                    "tool": f"{tool.server}/{tool.name}",
                    "arguments": routed.arguments,
                    "question": draft.answer,
                },
            )
            return
        await self._call(turn_context, draft, ToolCall(tool, routed.arguments))

    async def forget(self, turn_context: TurnContext, *, reject: bool = False) -> None:
        """End the question the bot asked, on a turn that is not its answer (a command, a flow);
        with `reject` (/reset), the user's pending approval is rejected too."""
        await self._take(turn_context)
        if reject:
            await self._runner.answer_approval(turn_context, False)

    async def _take_question(
        self, turn_context: TurnContext, history: list[ChatMessage]
    ) -> dict[str, Any]:
        """The question the bot's previous message asked ({} if it asked none), forgotten: it
        is answered now or never."""
        asked = await self._take(turn_context)
        last = history[-1] if history else None
        if not asked or last is None or last.role != "assistant":
            return {}
        return asked if last.content == asked.get("question") else {}

    async def _take(self, turn_context: TurnContext) -> dict[str, Any] | None:
        asked: dict[str, Any] | None = await self._questions.get(turn_context, lambda: None)
        await self._questions.delete(turn_context)  # present now: get set the default
        return asked

    async def _route(
        self, text: str, previous: str, tools: list[ToolSpec], waiting: dict[str, Any] | None
    ) -> Routed | None:
        """The tool and arguments for `text`: the call `waiting` for arguments (just asked for)
        gets them from it; else the tool it asks for (with the previous message where it alone
        holds only an argument), its arguments from it, and missing ones from the previous
        message."""
        routed = await self._router.choose_in_context(text, previous, tools)
        if waiting:
            wanted = next((t for t in tools if f"{t.server}/{t.name}" == waiting["tool"]), None)
            if wanted is not None and routed.tool in (None, wanted):
                return await self._router.fill(wanted, text, waiting.get("arguments"))
        if routed.tool is None:
            return None
        filled = routed if routed.filled else await self._router.fill(routed.tool, text)
        if filled.missing and previous:  # "cancel it": the order named just before
            filled = await self._router.fill(routed.tool, f"{previous}\n{text}", filled.arguments)
        return filled

    async def _call(self, turn_context: TurnContext, draft: TurnDraft, call: ToolCall) -> None:
        tool = call.tool
        source = f"{tool.server}/{tool.name}"
        if tool.rule == "auto":  # runs now (else the runner asks for approval)
            await draft.progress(progress_text(call))
        try:
            outcome = await asyncio.wait_for(
                self._runner.run(turn_context, call), self._turn_timeout_s
            )
        except TimeoutError:
            outcome = ToolOutcome("timeout", "it took too long")
        if outcome.status == "pending":
            draft.answer = f"I'll run {tool.name} once you approve it (see above)."
            await self._questions.set(
                turn_context, {"approval": outcome.approval_id, "question": draft.answer}
            )
        elif outcome.ok and tool.read_only:
            draft.passages = [tool_passage(tool, outcome.text)]
        else:
            draft.answer = outcome_answer(tool.name, source, outcome)

    async def after_reply(self, turn_context: TurnContext, draft: TurnDraft) -> None:
        return None
