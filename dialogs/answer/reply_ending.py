"""Replies that end on a sentence, and that stream only text the final message keeps.

`end_on_sentence(pieces, count, cap=200, grace=48)` wraps a model's stream of pieces, generated
with `max_new_tokens = cap + grace`:

- up to `cap - hold` tokens, text passes through as it comes;
- from there on, only the word in progress and then complete sentences pass, so nothing streamed
  is ever taken back and the reply can always end on a sentence or at least a whole word;
- past `cap`, the reply ends at the first sentence end within the grace tokens (the model's stream
  is closed there, which stops generation);
- when even the grace runs out without a sentence end, the reply ends where the text passed so far
  ends (a sentence end, or at worst a word) and is marked with "…".

A reply the model ends by itself passes whole. Text with no letter, digit or symbol yet (only
spaces or punctuation) is held back, so an empty reply can be retried unseen (`is_empty_reply`).
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import AsyncIterator, Callable

ELLIPSIS = "…"
DEFAULT_GRACE_TOKENS = 48
_SLACK_TOKENS = 4  # re-tokenised text may count a few tokens fewer than were generated
# A sentence ends at . ! ? or … (then closing quotes, brackets or markdown emphasis), followed
# by whitespace; "Dr. Smith" and "e.g. this" are not ends.
_SENTENCE_END = re.compile(r"""[.!?…]["'”’)\]*_]*(?=\s)""")
_ABBREVIATION = re.compile(
    r"(?:\b(?:mr|mrs|ms|dr|prof|st|jr|sr|vs|etc|no|fig|e\.g|i\.e)|\b[A-Za-z]|\d)\.$", re.IGNORECASE
)


def is_empty_reply(text: str) -> bool:
    """True for a reply with nothing to read: empty, whitespace or punctuation only."""
    return all(ch.isspace() or unicodedata.category(ch).startswith("P") for ch in text)


def sentence_ends(text: str, start: int = 0) -> list[int]:
    """Offsets just after each complete sentence of `text` that ends after `start`."""
    ends = []
    for match in _SENTENCE_END.finditer(text, start):
        if match.group(0)[0] == "." and _ABBREVIATION.search(text[: match.start() + 1]):
            continue
        ends.append(match.end())
    return ends


def ends_mid_sentence(text: str) -> bool:
    """True when `text` stops inside a sentence (no end punctuation, closing mark or "…")."""
    stripped = text.rstrip().rstrip("\"'”’)]*_`")
    return bool(stripped) and stripped[-1] not in ".!?…"


async def end_on_sentence(
    pieces: AsyncIterator[str],
    count_tokens: Callable[[str], int],
    *,
    cap: int,
    grace: int = DEFAULT_GRACE_TOKENS,
    hold: int | None = None,
) -> AsyncIterator[str]:
    """Pass `pieces` through so that the reply ends on a sentence (see the module's docstring).

    `count_tokens(text)` counts the reply's tokens (called in a worker thread: it is CPU work);
    `hold` (default: a quarter of `cap`, at most 64) is how many tokens before the cap only whole
    sentences pass. Closing this iterator closes `pieces`. Errors of `pieces` propagate after what
    was passed.
    """
    hold = min(64, cap // 4) if hold is None else hold
    text = ""
    passed = 0  # len(text) already yielded
    try:
        async for piece in pieces:
            text += piece
            if is_empty_reply(text):
                continue
            tokens = await asyncio.to_thread(count_tokens, text)  # CPU work: off the loop
            if tokens < cap - hold:
                end = len(text)
            else:
                ends = sentence_ends(text, passed)
                if tokens >= cap and ends:
                    yield text[passed : ends[0]]
                    return
                end = ends[-1] if ends else _word_end(text, passed)
            if end > passed:
                yield text[passed:end]
                passed = end
        if (
            await asyncio.to_thread(count_tokens, text) < cap + grace - _SLACK_TOKENS
        ):  # the model ended the reply itself
            if text[passed:] and not is_empty_reply(text):
                yield text[passed:]
            return
        if passed and text[passed:].strip():  # the grace ran out mid-sentence: cut and mark it
            yield ELLIPSIS if text[passed - 1].isspace() else " " + ELLIPSIS
    finally:
        aclose = getattr(pieces, "aclose", None)
        if aclose is not None:
            await aclose()


def _word_end(text: str, passed: int) -> int:
    """Where the word that `text[:passed]` ends inside ends, once it has (else `passed`)."""
    if passed == 0 or text[passed - 1].isspace() or passed >= len(text):
        return passed
    match = re.compile(r"\s").search(text, passed)
    return match.start() if match else passed
