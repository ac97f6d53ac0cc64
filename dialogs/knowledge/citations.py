"""Citations: which passages a reply used, and [n] markers in its text that match them.

How each channel shows them (a schema.org entity, Markdown references, a "Sources:" line) is the
channel layer's business: bot/channels/citations.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from dialogs.knowledge.passages import Passage
from dialogs.text import STOPWORDS, sentences

MARKER = re.compile(r"\s?\[(\d{1,2})\]")
MIN_OVERLAP = 0.2  # a reply repeating less of a passage's words than this did not use it
_WORD = re.compile(r"[a-z0-9]+(?:[-.,:][a-z0-9]+)*")


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
    words = {w for w in _WORD.findall(MARKER.sub("", reply).lower()) if w not in STOPWORDS}
    words = {w for w in words if len(w) > 2 or w.isdigit()}
    if not words:
        return [0.0] * len(passages)
    found = [set(_WORD.findall(f"{p.title} {p.text}".lower())) for p in passages]
    return [len(words & f) / len(words) for f in found]


def best_sentences(text: str, reply: str) -> str:
    """`text` from its sentence that shares most words with `reply` (all of it when none does)."""
    parts = sentences(text)
    words = set(_WORD.findall(reply.lower())) - STOPWORDS
    if not words or len(parts) < 2:
        return " ".join(parts)
    scores = [len(words & set(_WORD.findall(s.lower()))) for s in parts]
    best = scores.index(max(scores))
    return " ".join(parts[best:])
