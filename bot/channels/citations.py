"""Citations as each channel shows them.

- Teams and Web Chat: one ``https://schema.org/Message`` entity with ``Claim`` citations
  (position, name, abstract of at most 160 characters, url where there is one) and the
  AI-generated label; the text keeps ``[n]`` markers. Web Chat also needs Markdown reference
  definitions (``[1]: cite:1 "Title"``) below the text to draw its citation badges.
- Every other channel (the Emulator, the terminal, Slack...): a "Sources:" line with the titles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.channels.streaming import DIRECT_LINE_CHANNELS, TEAMS
from dialogs.knowledge.citations import best_sentences
from dialogs.knowledge.passages import Passage

ABSTRACT_CHARS = 160  # Teams shows at most this much of a citation's abstract
NAME_CHARS = 80


def citation_claims(cited: Sequence[Passage], reply: str = "") -> list[dict[str, Any]]:
    """The schema.org ``Claim`` citations of a reply, positions 1..n (Teams and Web Chat). The
    abstract starts at the passage's sentence that shares most words with `reply`."""
    claims = []
    for position, passage in enumerate(cited, 1):
        appearance: dict[str, Any] = {
            "@type": "DigitalDocument",
            "name": _shorten(passage.title, NAME_CHARS),
            "abstract": _shorten(best_sentences(passage.text, reply), ABSTRACT_CHARS),
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
    channel_id: str | None, text: str, cited: Sequence[Passage]
) -> tuple[str, list[dict[str, Any]] | None]:
    """The final message's text on `channel_id` for a reply whose [n] markers name `cited`, and
    the citation claims that go into its schema.org Message entity (bot/channels/ai_content.py),
    None where the channel shows no citations (there, a "Sources:" line instead)."""
    if not cited:
        return text, None
    channel = (channel_id or "").lower()
    if channel == TEAMS:
        return text, citation_claims(cited, text)
    if channel in DIRECT_LINE_CHANNELS:
        return f"{text}\n\n{webchat_references(cited)}", citation_claims(cited, text)
    return f"{text}\n\n{sources_line(cited)}", None


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
