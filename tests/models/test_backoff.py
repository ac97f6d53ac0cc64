"""models/backoff.py: Retry-After parsing and jittered exponential backoff."""

from __future__ import annotations

import pytest

from models.backoff import backoff_s, retry_after_s


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), (" 2 ", 2.0), ("0.5", 0.5), ("0", 0.0), (None, None), ("-1", None)],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_s(header) == seconds


def test_an_http_date_or_garbage_counts_as_absent() -> None:
    assert retry_after_s("Wed, 21 Oct 2026 07:28:00 GMT") is None
    assert retry_after_s("soon") is None


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    for retry, middle in ((1, 0.5), (2, 1.0), (3, 2.0)):
        delays = [backoff_s(retry, 0.5, 60.0) for _ in range(200)]
        assert all(0.8 * middle <= d <= 1.2 * middle for d in delays)
        assert len(set(delays)) > 1  # jittered: clients refused together spread out
    assert backoff_s(10, 0.5, 8.0) == 8.0
