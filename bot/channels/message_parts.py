"""Replies longer than a channel's message size, split into messages at paragraph boundaries, and
what a stream's updates and final message hold of such a reply."""

from __future__ import annotations


def split_message(text: str, max_bytes: int | None) -> list[str]:
    """`text` in parts of at most `max_bytes` UTF-8 bytes each (None: no limit), split at
    paragraph boundaries (blank lines), else at line ends, else at spaces; a single word longer
    than the limit is cut. Always at least one part (the text itself when it is short)."""
    if max_bytes is None or len(text.encode()) <= max_bytes:
        return [text]
    parts: list[str] = []
    rest = text
    while len(rest.encode()) > max_bytes:
        window = rest.encode()[:max_bytes].decode(errors="ignore")
        cut = _boundary(rest, len(window))
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return [part for part in parts if part] or [text[:max_bytes]]


def _boundary(rest: str, fits: int) -> int:
    """Where to end a part of `rest` whose first `fits` characters fit: before the last paragraph
    break, line end or space that starts within them (the separator itself may not fit)."""
    for separator in ("\n\n", "\n", " "):
        at = rest.rfind(separator, 0, fits + len(separator))
        if 0 < at <= fits:
            return at + len(separator)
    return fits


def update_text(text: str, max_bytes: int | None) -> str | None:
    """What a streaming update shows of the reply `text` so far; None once it is too long for one
    message (the final message and the next ones carry it). Past half the limit, a reply that may
    need splitting shows whole paragraphs only, so the final message (split at a paragraph) holds
    everything the stream showed."""
    text = text.lstrip()
    if max_bytes is None:
        return text
    size = len(text.encode())
    if size > max_bytes:
        return None
    if size > max_bytes // 2 and "\n\n" in text:
        return text[: text.rfind("\n\n")]
    return text


def final_parts(text: str, shown: str, max_bytes: int | None, *, size_refused: bool) -> list[str]:
    """A stream's final message and the messages after it, split at paragraphs. The final holds
    at least what the stream `shown` (Teams requires it); after the channel refused the stream's
    size (`size_refused`), exactly that."""
    parts = split_message(text, max_bytes)
    shown = shown.rstrip()
    if not shown or not text.startswith(shown):
        return parts
    if not size_refused and parts[0].startswith(shown):
        return parts
    rest = text[len(shown) :].strip()
    return [shown, *(split_message(rest, max_bytes) if rest else [])]
