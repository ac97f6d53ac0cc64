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
