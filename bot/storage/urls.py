"""Database URLs as messages may show them: where a store is, never its password."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

_NAMESPACE = re.compile(r"[a-z][a-z0-9_]{0,39}")


def check_namespace(namespace: str) -> str:
    """`namespace` if it can prefix table names and keys safely (lowercase, digits, _), else
    ValueError. The namespace is pasted into SQL, so nothing else gets through."""
    if not _NAMESPACE.fullmatch(namespace):
        raise ValueError(
            f"storage namespace {namespace!r} must be 1-40 lowercase letters, digits or _, "
            "starting with a letter"
        )
    return namespace


def where(url: str, default_port: int) -> str:
    """`host:port/database` (or `host:port/db-number` for Redis) from a database URL."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or default_port
    except ValueError:
        return "a malformed URL"
    path = parts.path.lstrip("/")
    return f"{host}:{port}/{path}" if path else f"{host}:{port}"


def scrub(text: str, url: str) -> str:
    """`text` with the URL's password (as written, or percent-decoded) replaced by ***."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    if password:
        for secret in sorted({password, unquote(password)}, key=len, reverse=True):
            text = text.replace(secret, "***")
    return text
