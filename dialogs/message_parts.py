"""Replies longer than a channel's message size, split into messages at paragraph boundaries."""

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
        cut = _boundary(window)
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return [part for part in parts if part] or [text[:max_bytes]]


def _boundary(window: str) -> int:
    """Where to end a part that must fit in `window`: after the last paragraph, line or word."""
    for separator in ("\n\n", "\n", " "):
        at = window.rfind(separator)
        if at > 0:
            return at + len(separator)
    return len(window)
