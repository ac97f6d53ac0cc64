"""Credentials out of reprs, log lines, traces and error text: one registry, one URL parser.

`mask_url` parses a URL and hides the password of its user info (as written, percent-encoded or
not) and the value of every query parameter whose name says it is a secret (`password`,
`access_token`, `api-key`, `sig`, `code`, `X-Amz-Signature`, ...). `redact` applies it to every
URL inside a free text (and masks the secret parameters of relative ones, `/path?sig=...`),
then replaces each registered secret, in each of its encodings (as written, percent-encoded,
form-encoded, JSON-escaped), by `***`.

The secrets are registered once per process from the settings (`register_settings`: the fields
`Settings.secret_values` names) by the app's wiring and the `botloom` command; `SecretsFilter`
applies `redact` to each log record (arguments and tracebacks included), and `describe_error`
is what an error may say where nobody authenticated reads it (/healthz, traces, responses).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

if TYPE_CHECKING:
    from bot.settings import Settings

MASK = "***"
MIN_SECRET_LEN = 4  # shorter values would mask ordinary words

# Query parameters whose value is a credential; names are compared lowercased, with - and .
# read as _ (api-key, Api.Key and api_key are one name).
SECRET_PARAMS = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "auth",
        "authorization",
        "client_secret",
        "code",
        "credential",
        "credentials",
        "id_token",
        "key",
        "pass",
        "passwd",
        "password",
        "pwd",
        "refresh_token",
        "secret",
        "session",
        "sig",
        "signature",
        "token",
    }
)
_SECRET_SUFFIXES = ("_token", "_secret", "_password", "_key", "_signature", "_credential")

_URL = re.compile(r"""[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>`]+""")
_QUERY_PAIR = re.compile(r"""(?<=[?&;])([A-Za-z0-9_.\-%]+)=([^&;#\s"'<>`]*)""")


def is_secret_param(name: str) -> bool:
    """True when a query parameter called `name` (as written in a URL) carries a credential."""
    normal = re.sub(r"[-.\s]", "_", unquote_plus(name).strip().lower())
    return normal in SECRET_PARAMS or normal.endswith(_SECRET_SUFFIXES)


def _split_userinfo(rest: str) -> tuple[str, str]:
    """(userinfo, after) of what follows `scheme://`; userinfo is "" when there is none.

    The user info ends at the last `@` before the query, so a password written with a raw `/`,
    `@` or `:` is still inside it."""
    end = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, end)
    if at < 0:
        return "", rest
    return rest[:at], rest[at + 1 :]


def _mask_query(query: str) -> str:
    parts = []
    for part in re.split(r"([&;])", query):
        name, eq, value = part.partition("=")
        parts.append(f"{name}={MASK}" if eq and value and is_secret_param(name) else part)
    return "".join(parts)


def mask_url(url: str) -> str:
    """`url` with the password of its user info and its secret query parameters replaced by
    ***; a string without `://` is returned as it is."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, rest = _split_userinfo(rest)
    if userinfo:
        user, colon, password = userinfo.partition(":")
        userinfo = f"{user}:{MASK}@" if colon and password else f"{userinfo}@"
    head, hash_, fragment = rest.partition("#")
    path, question, query = head.partition("?")
    if question:
        query = _mask_query(query)
    if hash_ and "=" in fragment:  # OAuth implicit flow: #access_token=...
        fragment = _mask_query(fragment)
    return f"{scheme}://{userinfo}{path}{question}{query}{hash_}{fragment}"


def mask_urls(text: str) -> str:
    """`text` with `mask_url` applied to every URL in it, and the secret query parameters of
    relative ones (`GET /v1/models?api-key=...`) masked too."""
    if "://" in text:
        text = _URL.sub(lambda match: mask_url(match.group(0)), text)
    if "=" in text and ("?" in text or "&" in text):
        text = _QUERY_PAIR.sub(_mask_pair, text)
    return text


def _mask_pair(match: re.Match[str]) -> str:
    name, value = match.group(1), match.group(2)
    return f"{name}={MASK}" if value and value != MASK and is_secret_param(name) else match[0]


def url_secrets(url: str) -> list[str]:
    """The credentials inside `url`: its user info's password and its secret query parameters'
    values, each as written and percent-decoded."""
    _, sep, rest = url.partition("://")
    if not sep:
        return []
    found = []
    userinfo, rest = _split_userinfo(rest)
    _, colon, password = userinfo.partition(":")
    if colon and password:
        found.append(password)
    query = rest.partition("#")[0].partition("?")[2]
    for part in re.split(r"[&;]", query):
        name, eq, value = part.partition("=")
        if eq and value and is_secret_param(name):
            found.append(value)
    return [form for secret in found for form in {secret, unquote(secret), unquote_plus(secret)}]


def url_password(url: str) -> str | None:
    """The password inside `url` (user info, percent-decoded), or None."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def encodings(secret: str) -> set[str]:
    """The ways `secret` may be written in a message: as it is, percent-encoded (in a path or
    a query), form-encoded and JSON-escaped."""
    return {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }


class Redactor:
    """A set of secrets, and `redact` to take them (and URL credentials) out of a text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._forms: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Register `secrets` (values shorter than MIN_SECRET_LEN are ignored); idempotent."""
        new = {s for s in secrets if s and len(s) >= MIN_SECRET_LEN} - self._known
        if not new:
            return
        with self._lock:
            self._known |= new
            forms = {form for s in self._known for form in encodings(s)}
            # Longest first, so a secret that contains another is masked whole.
            self._forms = tuple(sorted(forms, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._forms)

    def redact(self, text: str) -> str:
        text = mask_urls(text)
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


# The process's secrets: registered by `register_settings`, used by `redact` and the log filter.
SECRETS = Redactor()


def register_settings(settings: Settings) -> None:
    """Register the credentials of `settings` with the process's redaction (idempotent)."""
    SECRETS.add(settings.secret_values())


def redact(text: str) -> str:
    """`text` without URL credentials and without any registered secret."""
    return SECRETS.redact(text)


def describe_error(error: BaseException) -> str:
    """What an error may say on a surface nobody authenticated to read: its class name and its
    redacted message."""
    message = redact(str(error)).strip()
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


class SecretsFilter(logging.Filter):
    """Redacts the records it sees (message, arguments, traceback, stack): URL credentials and
    the secrets of `redactor` (default: the process's registered ones)."""

    def __init__(self, secrets: Iterable[str] = (), *, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor if redactor is not None else Redactor(secrets)
        if redactor is not None:
            redactor.add(secrets)

    @classmethod
    def for_settings(cls, settings: Settings) -> SecretsFilter:
        """A filter for the credentials of `settings`, registered with the process's redaction."""
        register_settings(settings)
        return cls(redactor=SECRETS)

    def mask(self, text: str) -> str:
        return self._redactor.redact(text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self.mask(message), None
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


def install_secrets_filter(settings: Settings) -> None:
    """Register the credentials of `settings` and put a SecretsFilter on every handler of the
    root logger (call after logging is set up)."""
    secrets = SecretsFilter.for_settings(settings)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, SecretsFilter) for f in handler.filters):
            handler.addFilter(secrets)
