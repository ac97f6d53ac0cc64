"""Citations: which passages a reply used, [n] markers that match them, and how each channel
shows them.

- Teams and Web Chat: one ``https://schema.org/Message`` entity with ``Claim`` citations
  (position, name, abstract of at most 160 characters, url where there is one) and the
  AI-generated label; the text keeps ``[n]`` markers. Web Chat also needs Markdown reference
  definitions (``[1]: cite:1 "Title"``) below the text to draw its citation badges.
- Every other channel (the Emulator, the terminal, Slack...): a "Sources:" line with the titles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dialogs.knowledge import Passage
from dialogs.streaming import DIRECT_LINE_CHANNELS, TEAMS

MARKER = re.compile(r"\s?\[(\d{1,2})\]")
ABSTRACT_CHARS = 160  # Teams shows at most this much of a citation's abstract
NAME_CHARS = 80
MIN_OVERLAP = 0.2  # a reply repeating less of a passage's words than this did not use it
_WORD = re.compile(r"[a-z0-9]+(?:[-.,:][a-z0-9]+)*")
_COMMON = frozenset(
    "the and for are was with that this from have has you your our its can will not but they "
    "which what when where who how does did".split()
)


@dataclass(frozen=True)
class CitedReply:
    text: str  # the reply with [1]..[n] markers matching `cited`
    cited: list[Passage]  # in marker order


def cite(reply: str, passages: Sequence[Passage]) -> CitedReply:
    """Keep the model's markers that name a passage the reply agrees with (it repeats at least
    half as many of that passage's words as of the best one's), renumbered 1..n by first
    appearance; other markers are dropped. Where none is left, cite the passages whose words the
    reply repeats most, with a marker at the end of the reply; when it repeats less than
    MIN_OVERLAP of its words from any of them, the first (best) passage, which it was asked to
    answer from: the user can check the answer against it."""
    reply = reply.strip()
    if not passages or not reply:
        return CitedReply(reply, [])
    overlaps = _overlaps(reply, passages)
    best = max(overlaps)
    order: list[int] = []
    for match in MARKER.finditer(reply):
        index = int(match.group(1)) - 1
        if not 0 <= index < len(passages) or index in order or best < MIN_OVERLAP:
            continue
        if overlaps[index] >= best * 0.5:
            order.append(index)

    def renumber(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1
        return f" [{order.index(index) + 1}]" if index in order else ""

    text = MARKER.sub(renumber, reply).strip()
    if order:
        return CitedReply(text, [passages[i] for i in order])
    if best < MIN_OVERLAP:  # the reply does not echo them: cite what it was given, best first
        used = [passages[0]]
    else:
        used = [p for p, o in zip(passages, overlaps, strict=True) if o >= best * 0.8][:3]
    markers = "".join(f"[{n}]" for n in range(1, len(used) + 1))
    if text[-1] in ".!?":
        text = f"{text[:-1]} {markers}{text[-1]}"
    else:
        text = f"{text} {markers}"
    return CitedReply(text, used)


def _overlaps(reply: str, passages: Sequence[Passage]) -> list[float]:
    """For each passage, the share of the reply's content words found in it."""
    words = {w for w in _WORD.findall(MARKER.sub("", reply).lower()) if w not in _COMMON}
    words = {w for w in words if len(w) > 2 or w.isdigit()}
    if not words:
        return [0.0] * len(passages)
    found = [set(_WORD.findall(f"{p.title} {p.text}".lower())) for p in passages]
    return [len(words & f) / len(words) for f in found]


def citation_claims(cited: Sequence[Passage], reply: str = "") -> list[dict[str, Any]]:
    """The schema.org ``Claim`` citations of a reply, positions 1..n (Teams and Web Chat). The
    abstract starts at the passage's sentence that shares most words with `reply`."""
    claims = []
    for position, passage in enumerate(cited, 1):
        appearance: dict[str, Any] = {
            "@type": "DigitalDocument",
            "name": _shorten(passage.title, NAME_CHARS),
            "abstract": _shorten(_from_best_sentence(passage.text, reply), ABSTRACT_CHARS),
        }
        if passage.url:
            appearance["url"] = passage.url
        if passage.location:
            appearance["keywords"] = [_shorten(passage.location, 28)]
        claims.append({"@type": "Claim", "position": position, "appearance": appearance})
    return claims


def webchat_references(cited: Sequence[Passage]) -> str:
    """Markdown reference definitions, one per citation, as Web Chat reads them."""
    lines = []
    for position, passage in enumerate(cited, 1):
        target = passage.url or f"cite:{position}"
        title = _shorten(passage.title, NAME_CHARS).replace('"', "'")
        lines.append(f'[{position}]: {target} "{title}"')
    return "\n".join(lines)


def sources_line(cited: Sequence[Passage]) -> str:
    """ "Sources: [1] Handbook (Holidays); [2] Product sheet" for channels without citations."""
    parts = []
    for position, passage in enumerate(cited, 1):
        where = f" ({passage.location})" if passage.location else ""
        parts.append(f"[{position}] {passage.title}{where}")
    return "Sources: " + "; ".join(parts)


def cited_message(
    channel_id: str | None, reply: CitedReply
) -> tuple[str, list[dict[str, Any]] | None]:
    """The final message's text on `channel_id` for a cited reply, and the citation claims that
    go into its schema.org Message entity (dialogs/ai_content.py), None where the channel shows
    no citations (there, a "Sources:" line instead)."""
    if not reply.cited:
        return reply.text, None
    channel = (channel_id or "").lower()
    if channel == TEAMS:
        return reply.text, citation_claims(reply.cited, reply.text)
    if channel in DIRECT_LINE_CHANNELS:
        text = f"{reply.text}\n\n{webchat_references(reply.cited)}"
        return text, citation_claims(reply.cited, reply.text)
    return f"{reply.text}\n\n{sources_line(reply.cited)}", None


def _from_best_sentence(text: str, reply: str) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    words = set(_WORD.findall(reply.lower())) - _COMMON
    if not words or len(sentences) < 2:
        return " ".join(sentences)
    scores = [len(words & set(_WORD.findall(s.lower()))) for s in sentences]
    best = scores.index(max(scores))
    return " ".join(sentences[best:])


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
