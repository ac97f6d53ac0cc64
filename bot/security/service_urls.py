"""Where the bot may send replies: loopback, or the service URLs the operator allowed.

With no app id there is no token to prove who sent an activity, so the bot would POST its reply to
any serviceUrl a request names (server-side request forgery). An Emulator token (with an app id)
is not bound to a service URL either, and the bot would attach its own bearer token to the POST.
botloom refuses such activities before any outbound request is made; a channel's token names its
service URL and botbuilder checks that it matches.

An allowlist entry such as ``https://smba.trafficmanager.net/teams`` admits URLs with exactly its
scheme, host and port (the scheme's default port when none is written) whose path is the entry's
path or below it on a ``/`` boundary: ``https://a.example`` admits ``https://a.example/x``, not
``https://a.example.evil.net/``.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def service_url_allowed(url: str, allowed: tuple[str, ...]) -> bool:
    """True for loopback http(s) URLs when `allowed` is empty, else for URLs under an entry."""
    parts = _split(url)
    if parts is None:
        return False
    if allowed:
        return any(_under(parts, entry) for entry in allowed)
    return parts.hostname is not None and is_loopback_host(parts.hostname)


def _split(url: str) -> SplitResult | None:
    """The URL's parts, or None unless it is an http(s) URL with a host and a valid port."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError:
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts


def _origin(parts: SplitResult) -> tuple[str, str, int]:
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS[scheme]


def _under(parts: SplitResult, entry: str) -> bool:
    allowed = _split(entry)
    if allowed is None or _origin(parts) != _origin(allowed):
        return False
    prefix = allowed.path.rstrip("/")
    return not prefix or parts.path == prefix or parts.path.startswith(prefix + "/")
