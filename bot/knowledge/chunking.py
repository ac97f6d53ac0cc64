"""Chunking: sections in, passages of at most `max_tokens` out, following the structure.

A chunk never crosses a section (a heading's text or a page). Inside a section paragraphs are
packed together up to the bound; a paragraph over the bound is cut at sentences, a sentence over
it at words. Each chunk after the first of a section starts with the last `overlap_tokens` of
the one before, so a fact cut at a boundary is still whole in one of them.

Tokens are counted as words and punctuation marks (`approx_tokens`), a slight undercount of
WordPiece tokens: the default bound of 180 keeps chunks within all-MiniLM-L6-v2's 256.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.knowledge.readers import Section

_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


def approx_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


@dataclass(frozen=True)
class Chunk:
    text: str
    heading: str
    page: int | None
    ordinal: int  # position in the document, from 0


def chunk_sections(
    sections: Iterable[Section], *, max_tokens: int = 180, overlap_tokens: int = 30
) -> list[Chunk]:
    """The document's chunks in reading order."""
    chunks: list[Chunk] = []
    for section in sections:
        for text in _pack(_units(section.text, max_tokens), max_tokens, overlap_tokens):
            chunks.append(Chunk(text, section.heading, section.page, len(chunks)))
    return chunks


def _units(text: str, max_tokens: int) -> list[str]:
    """Paragraphs; over-long ones as sentences; over-long sentences as runs of words. A unit
    that starts a paragraph begins with a newline (joined as a paragraph break)."""
    units: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        pieces: list[str] = []
        if approx_tokens(paragraph) <= max_tokens:
            pieces.append(paragraph)
        else:
            for sentence in _SENTENCE_END.split(paragraph):
                if approx_tokens(sentence) <= max_tokens:
                    pieces.append(sentence)
                    continue
                words = sentence.split()
                step = max(1, max_tokens // 2)  # words are often two tokens (numbers, marks)
                pieces.extend(" ".join(words[i : i + step]) for i in range(0, len(words), step))
        units.extend(["\n" + pieces[0], *pieces[1:]])
    return units


def _pack(units: list[str], max_tokens: int, overlap_tokens: int) -> list[str]:
    chunks: list[list[str]] = []
    current: list[str] = []
    size = 0
    for unit in units:
        tokens = approx_tokens(unit)
        if current and size + tokens > max_tokens:
            chunks.append(current)
            current = _tail(current, overlap_tokens, max_tokens - tokens)
            size = sum(approx_tokens(u) for u in current)
        current.append(unit)
        size += tokens
    if current:
        chunks.append(current)
    return [_join(chunk) for chunk in chunks]


def _join(units: list[str]) -> str:
    text = "".join(("\n" + u if u.startswith("\n") else " " + u) for u in units)
    return text.strip()


def _tail(units: list[str], overlap_tokens: int, room: int) -> list[str]:
    """The end of the previous chunk, about `overlap_tokens` long (words of its last unit)."""
    budget = min(overlap_tokens, room)
    if budget <= 0:
        return []
    last = units[-1].lstrip("\n")
    words = last.split()
    tail: list[str] = []
    for word in reversed(words):
        if approx_tokens(" ".join([word, *tail])) > budget:
            break
        tail.insert(0, word)
    if len(tail) == len(words):
        return ["\n" + last]
    return ["\n… " + " ".join(tail)] if tail else []
