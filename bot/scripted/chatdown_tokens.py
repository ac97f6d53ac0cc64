"""A `.chat` turn's lines → text and bracket commands (`[Typing]`, `[Delay=ms]`, …), in order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.scripted.errors import ScriptError

COMMANDS = {
    "typing", "delay", "conversationupdate", "attachment", "attachmentlayout", "suggestions",
    "press", "toolcalls", "invokeresponse",
}  # fmt: skip
CARDS = {
    "herocard", "thumbnailcard", "audiocard", "videocard", "animationcard", "mediacard",
    "signincard", "oauthcard", "basiccard", "receiptcard", "adaptivecard",
}  # fmt: skip
_BRACKET = re.compile(r"\[([^\[\]]*)\]")
_UNCLOSED = re.compile(r"\[\s*([A-Za-z]+)(?=[\s=]|$)[^\]]*$")


@dataclass(frozen=True)
class Command:
    name: str  # lower case, e.g. "typing"
    value: str | None  # what follows "=", stripped


def tokens(path: Path, body: list[tuple[int, str]]) -> Iterator[tuple[int, str | Command]]:
    """Text and commands in order; a line holding only commands adds no newline to the text."""
    index = 0
    while index < len(body):
        number, line = body[index]
        index += 1
        while (unclosed := _UNCLOSED.search(line)) and _is_command(unclosed.group(1)):
            if index >= len(body):
                raise ScriptError(path, number, f"[{unclosed.group(1)} is missing its ]")
            line += "\n" + body[index][1]
            index += 1
        pieces = list(_pieces(path, line, number))
        commands = [p for p in pieces if isinstance(p, Command)]
        if commands and not "".join(p for p in pieces if isinstance(p, str)).strip():
            yield from ((number, c) for c in commands)
        else:
            yield from ((number, p) for p in pieces)
            yield number, "\n"


def _pieces(path: Path, line: str, number: int) -> Iterator[str | Command]:
    position = 0
    for match in _BRACKET.finditer(line):
        name, equals, value = match.group(1).partition("=")
        name = name.strip().lower()
        if name.split()[:1] and name.split()[0] in CARDS:
            reason = "card commands are not supported: use [Attachment=card.json hero]"
            raise ScriptError(path, number, reason)
        if name not in COMMANDS:
            continue
        if (name == "typing") == bool(equals):
            raise ScriptError(path, number, f"malformed command [{match.group(1)}]")
        yield line[position : match.start()]
        yield Command(name, value.strip() if equals else None)
        position = match.end()
    yield line[position:]


def _is_command(name: str) -> bool:
    return name.lower() in COMMANDS or name.lower() in CARDS
