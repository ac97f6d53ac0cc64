"""Replay a script against the bot in-process and check every reply it states.

The bot is production's: `build_runtime` wires the same activity handler, dialogs and state
(in memory) around the model the run chose. Each user step is one turn; the bot's replies to
it are matched in order against the bot lines that follow. Typing is skipped unless the script
states `[Typing]` (one `[Typing]` stands for the indicator's repeats); trace activities are never
compared. A reply the script does not mention, or a missing one, fails the script.

A script with `mcp=` runs with those servers (tools.py), connected (or failed) before its first
turn; `[Press=…]` presses a button of the latest Adaptive Card (press.py), and `[ToolCalls=…]`
compares the calls in the audit log since the previous check. The runtime is closed at the end.
"""

from __future__ import annotations

import asyncio
import tempfile
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn

from botbuilder.core import MemoryStorage, TurnContext
from botbuilder.schema import Activity, ActivityTypes

from bot.app import Runtime, build_runtime
from bot.scripted.adapter import ScriptAdapter
from bot.scripted.chatdown import load_chat
from bot.scripted.errors import ScriptError, ScriptFailure
from bot.scripted.model_choice import ScriptModels
from bot.scripted.press import button, latest_card, pressed, titles
from bot.scripted.render import render, said
from bot.scripted.replies import ScriptedChatModel
from bot.scripted.steps import (
    ExpectActivity,
    ExpectInvokeResponse,
    ExpectMessage,
    ExpectToolCalls,
    ExpectTyping,
    Script,
    Send,
)
from bot.scripted.tools import ToolCalls, with_tools
from bot.scripted.transcript import load_transcript
from bot.settings import Settings
from models import ChatModel

SUFFIXES = (".chat", ".transcript")
IGNORED = {ActivityTypes.trace}


def load_script(path: Path) -> Script:
    """A `.chat` or `.transcript` file as a Script; ScriptError when it is malformed."""
    if path.suffix == ".chat":
        return load_chat(path)
    if path.suffix == ".transcript":
        return load_transcript(path)
    raise ScriptError(path, None, f"not a script: the name should end in {' or '.join(SUFFIXES)}")


async def run_script(script: Script, settings: Settings, model: ChatModel) -> None:
    """Replay `script` with `model` (left open: its owner closes it); raises ScriptFailure."""
    await model.wait_ready()
    with tempfile.TemporaryDirectory(prefix="botloom-script-") as folder:
        audit = None
        if script.mcp_config is not None:
            settings, audit = with_tools(settings, script.mcp_config, Path(folder))
        runtime = build_runtime(settings, model=model, storage=MemoryStorage())
        try:
            await _start_tools(runtime)
            calls = ToolCalls(audit) if audit is not None else None
            await Replay(script, runtime.bot.on_turn, calls=calls).run()
        finally:
            await runtime.aclose(close_model=False)


async def _start_tools(runtime: Runtime) -> None:
    """Connect the tool servers; return once each was tried, so no turn finds one connecting."""
    if runtime.tools is not None:
        runtime.tools.start()
        await runtime.tools.servers.wait_tried()


class Replay:
    """One run of a script: sends the user's steps, matches the bot's replies."""

    def __init__(
        self,
        script: Script,
        logic: Callable[[TurnContext], Awaitable],
        *,
        calls: ToolCalls | None = None,
    ) -> None:
        self._script = script
        self._logic = logic
        self._calls = calls  # the tools that ran, for [ToolCalls=…]
        self._adapter = ScriptAdapter()
        self._pending: deque[Activity] = deque()
        self._conversation: list[str] = []
        self._card: object = None  # the latest Adaptive Card the bot sent, for [Press=…]

    async def run(self) -> None:
        previous = None
        for step in self._script.steps:
            if isinstance(step, Send):
                await self._send(step)
            elif isinstance(step, ExpectTyping):
                if not isinstance(previous, ExpectTyping):  # [Typing][Typing] is one indicator
                    self._typing(step)
            elif isinstance(step, ExpectMessage):
                self._message(step)
            elif isinstance(step, ExpectInvokeResponse):
                self._invoke_response(step)
            elif isinstance(step, ExpectToolCalls):
                self._tool_calls(step)
            else:
                self._other(step)
            previous = step
        self._nothing_more(self._script.end_line, "the script ends")

    async def _send(self, step: Send) -> None:
        self._nothing_more(step.line, "the user's next turn")
        if step.delay_ms:
            await asyncio.sleep(step.delay_ms / 1000)
        sender = step.activity.from_property
        speaker = str(sender.name or sender.id) if sender else "user"
        activity = step.activity
        if step.press is None:
            self._say(speaker, activity)
        else:
            self._conversation.extend(said(speaker, f"[Press={step.press}]").split("\n"))
            activity = self._press(step.line, step.press, activity)
        replies = await self._adapter.process(activity, self._logic)
        self._card = latest_card(replies, self._card)
        self._pending = deque(reply for reply in replies if reply.type not in IGNORED)

    def _press(self, line: int, title: str, frame: Activity) -> Activity:
        action = button(self._card, title)
        if action is None:
            shown = ", ".join(titles(self._card)) or "(none)"
            raise self._failure(
                line,
                f"no card with a button '{title}' before line {line}",
                expected=f"[Press={title}] on the latest Adaptive Card the bot sent",
                actual="no Adaptive Card" if self._card is None else f"its buttons: {shown}",
            )
        return pressed(frame, action)

    def _typing(self, step: ExpectTyping) -> None:
        if not self._pending or self._pending[0].type != ActivityTypes.typing:
            self._fail_unexpected(step.line, "[Typing]")
        while self._pending and self._pending[0].type == ActivityTypes.typing:
            self._say("bot", self._pending.popleft())

    def _message(self, step: ExpectMessage) -> None:
        reply = self._next_reply(step.line, step.describe(), skip_typing=True)
        if reply.type != ActivityTypes.message:
            self._fail_unexpected(step.line, step.describe(), reply)
        problems = step.mismatches(reply)
        if problems:
            actual = render(reply)
            if "recipient" in problems and reply.recipient is not None:
                actual += f"\n(to {reply.recipient.name or reply.recipient.id})"
            raise self._failure(
                step.line,
                f"the bot's reply does not match the script ({', '.join(problems)})",
                expected=step.describe(),
                actual=actual,
                diff=step.text.diff(reply.text) if "text" in problems else [],
            )

    def _invoke_response(self, step: ExpectInvokeResponse) -> None:
        reply = self._next_reply(step.line, step.describe(), skip_typing=True)
        if reply.type != ActivityTypes.invoke_response:
            self._fail_unexpected(step.line, step.describe(), reply)
        problems = step.mismatches(reply)
        if problems:
            raise self._failure(
                step.line,
                f"the bot's answer to the invoke does not match the script ({', '.join(problems)})",
                expected=step.describe(),
                actual=render(reply),
            )

    def _tool_calls(self, step: ExpectToolCalls) -> None:
        if self._calls is None:
            raise ScriptError(self._script.path, step.line, "[ToolCalls=…] needs an mcp= header")
        ran = self._calls.since_last()
        if ran != step.tools:
            raise self._failure(
                step.line,
                "the tools that ran do not match the script",
                expected=step.describe(),
                actual=ExpectToolCalls(step.line, ran).describe(),
            )

    def _other(self, step: ExpectActivity) -> None:
        expected = f"[{step.type}" + (f" name={step.name}" if step.name else "") + "]"
        reply = self._next_reply(step.line, expected, skip_typing=True)
        if reply.type != step.type or (step.name is not None and reply.name != step.name):
            self._fail_unexpected(step.line, expected, reply)

    def _next_reply(self, line: int, expected: str, *, skip_typing: bool) -> Activity:
        while skip_typing and self._pending and self._pending[0].type == ActivityTypes.typing:
            self._say("bot", self._pending.popleft())
        if not self._pending:
            self._fail_unexpected(line, expected)
        reply = self._pending.popleft()
        self._say("bot", reply)
        return reply

    def _nothing_more(self, line: int, before: str) -> None:
        while self._pending and self._pending[0].type == ActivityTypes.typing:
            self._pending.popleft()
        if self._pending:
            reply = self._pending.popleft()
            self._say("bot", reply)
            raise self._failure(
                line,
                "the bot sent a reply that the script does not expect",
                expected=f"(no more replies before {before})",
                actual=render(reply),
            )

    def _fail_unexpected(self, line: int, expected: str, reply: Activity | None = None) -> NoReturn:
        if reply is None and self._pending:
            reply = self._pending.popleft()
            self._say("bot", reply)
        if reply is None:
            reason, actual = "the bot sent no further reply in this turn", "(no reply)"
        else:
            reason, actual = "the bot's reply does not match the script", render(reply)
        raise self._failure(line, reason, expected=expected, actual=actual)

    def _failure(
        self, line: int, reason: str, *, expected: str, actual: str, diff: list[str] | None = None
    ) -> ScriptFailure:
        notes = [f"a turn raised {type(e).__name__}: {e}" for e in self._adapter.errors]
        notes += _tracebacks(self._adapter.errors)
        return ScriptFailure(
            self._script.path,
            line,
            reason,
            expected=expected,
            actual=actual,
            diff=diff or [],
            conversation=self._conversation,
            notes=notes,
        )

    def _say(self, speaker: str, activity: Activity) -> None:
        line = said(speaker, render(activity))
        if activity.type == ActivityTypes.typing and self._conversation[-1:] == [line]:
            return  # the indicator repeats while a reply is slow; show it once
        self._conversation.extend(line.split("\n"))


def _tracebacks(errors: list[Exception]) -> list[str]:
    lines: list[str] = []
    for error in errors:
        lines += "".join(traceback.format_exception(error)).rstrip().split("\n")
    return ["  " + line for line in lines]


async def run_file(path: Path, settings: Settings, models: ScriptModels) -> None:
    """Load and replay the script at `path`; raises ScriptError or ScriptFailure."""
    script = load_script(path)
    model = models.for_script(path)
    try:
        await run_script(script, settings, model)
    except ScriptFailure as failure:
        if isinstance(model, ScriptedChatModel) and model.exhausted:
            failure.notes.insert(0, f"the bot asked for more replies than {model.source} lists")
        raise
