"""How long to wait before trying a refused HTTP request again: what the server's Retry-After
says, else exponential backoff with jitter. Shared by the connector client (replies to
channels) and the remote model backend."""

from __future__ import annotations

import random


def retry_after_s(header: str | None) -> float | None:
    """A Retry-After header in seconds; None when absent, negative or an HTTP date (rare from the
    servers botloom talks to, and treated as absent)."""
    try:
        seconds = float(header) if header is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def backoff_s(retry: int, base_s: float, cap_s: float) -> float:
    """`base_s` doubled for each retry after the first (`retry` counts from 1), ±20 % jitter so
    that clients refused together do not come back together, at most `cap_s`."""
    return min(base_s * 2 ** (retry - 1) * random.uniform(0.8, 1.2), cap_s)
