"""The tool audit log: one JSON line per call (conversation, user, server, tool, arguments with
secrets masked, approval, outcome, duration), appended to BOTLOOM_TOOLS_AUDIT; `botloom tools
audit --since` reads it back."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.redaction import MASK, is_secret_param, redact

logger = logging.getLogger(__name__)

NOT_RUN = "not run"  # the outcome of a rejected call
_SECRET_WORDS = (
    "password",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "api_key",
    "authorization",
    "credential",
)
_SECRET_PARTS = frozenset({"pin", "pwd", "passwd", "auth"})  # whole parts only: not "shipping"
_AUTH_HEADER = re.compile(r"(?im)\b((?:proxy-)?authorization\s*[:=]\s*)\S[^\r\n]*")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*")


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    parts = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())
    return (
        is_secret_param(lowered)
        or any(word in lowered for word in _SECRET_WORDS)
        or not _SECRET_PARTS.isdisjoint(parts)
    )


def mask_text(text: str) -> str:
    """`text` without credentials: URL secrets, registered secrets, an `Authorization:` header's
    value and a `Bearer` token."""
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + MASK, redact(text))
    return _BEARER.sub(lambda m: m.group(1) + MASK, text)


def mask_value(value: Any) -> Any:
    """`value` with secrets masked at any depth: in dicts by key name, in strings by content."""
    if isinstance(value, dict):
        return mask_arguments(value)
    if isinstance(value, (list, tuple)):
        return [mask_value(item) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def mask_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments with secret-looking names masked (api_key, token, password, secret,
    authorization, passphrase, pin, ...) and secrets out of values, in nested dicts and lists
    too."""
    return {
        name: MASK if _is_secret_name(str(name)) else mask_value(value)
        for name, value in arguments.items()
    }


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:  # one write of one line: lines of concurrent writers do not interleave
        if line:
            os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


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
            line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
            try:
                _append(self.path, line)
            except OSError:  # the call ran (or was rejected) all the same: never fail the turn
                logger.exception(
                    "tool audit: could not append to %s (conversation %s, %s/%s, %s)",
                    self.path,
                    conversation,
                    server,
                    tool,
                    outcome,
                )
        return entry

    def check_writable(self) -> None:
        """Open the file for append (creating it and its folder) and close it. OSError if it
        cannot be written (e.g. a read-only filesystem)."""
        if self.path is not None:
            _append(self.path, "")

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
