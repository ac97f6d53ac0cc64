"""Credentials out of reprs and log lines: passwords inside URLs masked, secret values replaced.

`mask_url` hides the password of a URL (user info, or a `password=` query parameter, as libpq
accepts); `SecretsFilter` replaces every configured secret (the app password, the model API key,
the passwords inside the storage and model URLs) by `***` in each log record it sees, arguments
and tracebacks included. `botloom`'s logging setup installs it on the root handlers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from bot.settings import Settings

MASK = "***"
_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|pass|pwd|secret|token)=)([^&#]*)")


def url_password(url: str) -> str | None:
    """The password inside `url` (user info), or None."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def mask_url(url: str) -> str:
    """`url` with its password (user info or query parameter) replaced by ***; any other string
    is returned as it is."""
    if "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        authority = f"{user}{colon}{MASK if colon else ''}@{host}"
    return _QUERY_PASSWORD.sub(rf"\1{MASK}", f"{scheme}://{authority}{slash}{path}")


class SecretsFilter(logging.Filter):
    """Replaces each secret by *** in the records it sees (message, arguments, traceback)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    @classmethod
    def for_settings(cls, settings: Settings) -> SecretsFilter:
        secrets = [settings.app_password, settings.model_api_key]
        for value in (settings.storage, settings.model_url):
            secrets += [p for p in (url_password(value), _query_password(value)) if p]
        return cls(secrets)

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self.mask(message), None
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


def _query_password(url: str) -> str | None:
    match = _QUERY_PASSWORD.search(url)
    return unquote(match.group(2)) if match and match.group(2) else None


def install_secrets_filter(settings: Settings) -> None:
    """Put a SecretsFilter on every handler of the root logger (call after logging is set up)."""
    secrets = SecretsFilter.for_settings(settings)
    for handler in logging.getLogger().handlers:
        handler.addFilter(secrets)
