"""The tool audit log: one JSON line per call (conversation, user, server, tool, arguments with
secrets masked, approval, outcome, duration), appended to BOTLOOM_TOOLS_AUDIT; `botloom tools
audit --since` reads it back."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.redaction import MASK, is_secret_param, redact

NOT_RUN = "not run"  # the outcome of a rejected call
_SECRET_WORDS = ("password", "secret", "token", "apikey", "api_key", "authorization", "credential")


def mask_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments with secret-looking names masked and known secrets out of values."""
    masked: dict[str, Any] = {}
    for name, value in arguments.items():
        lowered = name.lower()
        if is_secret_param(lowered) or any(word in lowered for word in _SECRET_WORDS):
            masked[name] = MASK
        elif isinstance(value, str):
            masked[name] = redact(value)
        else:
            masked[name] = value
    return masked


class AuditLog:
    """Appends one line per call to `path` (None: calls are only logged, not kept)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None

    def record(
        self,
        *,
        conversation: str,
        user: str,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        approval: str,
        outcome: str,
        duration_ms: float,
    ) -> dict[str, Any]:
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "conversation": conversation,
            "user": user,
            "server": server,
            "tool": tool,
            "arguments": mask_arguments(arguments),
            "approval": approval,
            "outcome": outcome,
            "duration_ms": round(duration_ms, 1),
        }
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = json.dumps(entry, ensure_ascii=False) + "\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:  # one write of one line: lines of concurrent writers do not interleave
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
        return entry

    def read(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """The entries at or after `since` (all when None), oldest first."""
        if self.path is None or not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    entry = json.loads(line)
                    when = datetime.fromisoformat(entry["time"])
                except (ValueError, KeyError, TypeError):
                    continue
                if since is None or when >= since:
                    yield entry


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """ "2h", "30m", "1d", "90s" ago, or an ISO time (UTC when it names no zone). ValueError."""
    now = now or datetime.now(UTC)
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    text = text.strip()
    if text[:-1].isdigit() and text[-1:] in units:
        return now - timedelta(**{units[text[-1]]: int(text[:-1])})
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def monotonic_ms(start: float) -> float:
    return (time.monotonic() - start) * 1000
