"""Where an anonymous bot may send replies: loopback, or prefixes the operator allowed.

With no app id there is no token to prove who sent an activity, so the bot would POST its reply to
any serviceUrl a request names (server-side request forgery). botloom refuses such activities
before any outbound request is made.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def service_url_allowed(url: str, allowed_prefixes: tuple[str, ...]) -> bool:
    """True for loopback URLs when no prefixes are configured, else for URLs under a prefix."""
    if allowed_prefixes:
        return any(url.startswith(prefix) for prefix in allowed_prefixes)
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host is not None and is_loopback_host(host)
