"""Readers that misbehave, registered in READERS by the parse-bound tests. They live in a module
of their own (standard library only) so that a parser worker imports them in no time."""

from __future__ import annotations

import os
import re
import time

from bot.knowledge.readers import ParsedDocument, Section

# The Markdown heading pattern as it once was: cubic on "# a" + spaces + "b", and it holds the
# GIL for the whole match.
CUBIC = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def gil_holding_reader(data: bytes, fallback_title: str, limits=None) -> ParsedDocument:  # type: ignore[no-untyped-def]
    """Holds the GIL in a regular expression, a second or more at a time, for 12 s in all."""
    end = time.monotonic() + 12.0
    while time.monotonic() < end:
        CUBIC.match("# a" + " " * 1_000 + "b")
    return ParsedDocument(fallback_title, [Section("Finished after all.")])


def crashing_reader(data: bytes, fallback_title: str, limits=None) -> ParsedDocument:  # type: ignore[no-untyped-def]
    """Ends its process at once, as an out-of-memory kill or a crash in a C library would."""
    os._exit(3)


def memory_hungry_reader(data: bytes, fallback_title: str, limits=None) -> ParsedDocument:  # type: ignore[no-untyped-def]
    """Asks for 1 GiB at once, as a document that inflates in memory would."""
    hoard = bytearray(1024 * 1024 * 1024)
    return ParsedDocument(fallback_title, [Section(f"Held {len(hoard)} bytes.")])
