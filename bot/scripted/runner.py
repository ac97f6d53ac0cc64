"""Replay a script against the bot in-process and check every reply it states.

The bot is production's: `build_runtime` wires the same activity handler, dialogs and state
(in memory) around the model the run chose. Each user step is one turn; the bot's replies to
it are matched in order against the bot lines that follow. Typing is skipped unless the script
states `[Typing]` (one `[Typing]` stands for the indicator's repeats); trace activities are never
compared. A reply the script does not mention, or a missing one, fails the script.
"""

from __future__ import annotations

import asyncio
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn

from botbuilder.core import MemoryStorage, TurnContext
from botbuilder.schema import Activity, ActivityTypes

from bot.app import build_runtime
from bot.scripted.adapter import ScriptAdapter
from bot.scripted.chatdown import load_chat
from bot.scripted.errors import ScriptError, ScriptFailure
from bot.scripted.model_choice import ScriptModels
from bot.scripted.render import render, said
from bot.scripted.replies import ScriptedChatModel
from bot.scripted.steps import ExpectActivity, ExpectMessage, ExpectTyping, Script, Send
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
    runtime = build_runtime(settings, model=model, storage=MemoryStorage())
    await Replay(script, runtime.bot.on_turn).run()


class Replay:
    """One run of a script: sends the user's steps, matches the bot's replies."""

    def __init__(self, script: Script, logic: Callable[[TurnContext], Awaitable]) -> None:
        self._script = script
        self._logic = logic
        self._adapter = ScriptAdapter()
        self._pending: deque[Activity] = deque()
        self._conversation: list[str] = []

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
            else:
                self._other(step)
            previous = step
        self._nothing_more(self._script.end_line, "the script ends")

    async def _send(self, step: Send) -> None:
        self._nothing_more(step.line, "the user's next turn")
        if step.delay_ms:
            await asyncio.sleep(step.delay_ms / 1000)
        sender = step.activity.from_property
        self._say(str(sender.name or sender.id) if sender else "user", step.activity)
        replies = await self._adapter.process(step.activity, self._logic)
        self._pending = deque(reply for reply in replies if reply.type not in IGNORED)

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
