"""A parsed document and what reading one may cost: the types every reader shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class UnreadableDocument(Exception):
    """The file is not a document we can read; the message says why, for one log line."""


@dataclass(frozen=True)
class Section:
    """A run of text under one heading (a heading path such as "Holidays") or on one page."""

    text: str
    heading: str = ""
    page: int | None = None


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    sections: list[Section]


MB = 1024 * 1024


@dataclass(frozen=True)
class ReadLimits:
    """What one document may unpack to: the parts of a .docx (a zip), in bytes, all together."""

    max_unpacked_bytes: int = 200 * MB


Reader = Callable[[bytes, str, ReadLimits], ParsedDocument]


class HeadingPath:
    """The headings above the current line: entering level n leaves every heading at n or below."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    def enter(self, level: int, heading: str) -> None:
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, heading))

    def text(self) -> str:
        return " > ".join(heading for _, heading in self._stack)
