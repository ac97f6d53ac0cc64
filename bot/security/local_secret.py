"""A secret of this process, so the local Direct Line and the bot know each other's requests.

A random token is made when the app is built and lives only in memory. Two kinds of request
carry it, and both are on this machine's loopback, where a peer address proves nothing (a reverse
proxy on the same host makes every request look local):

- the bot's replies to the local Direct Line's connector routes (/v3/conversations/...): the
  bot's own connector client sends `Authorization: Bearer <token>`, and only to the service URLs
  the local Direct Line named as its own (`add_own_service_url`), never to another listener;
- the activities the local Direct Line forwards to /api/messages, in LOCAL_CHANNEL_HEADER (not
  `Authorization`: botbuilder reads that one as a channel token): the endpoint then trusts the
  user id that the Direct Line bound into the conversation's token.
"""

from __future__ import annotations

import secrets

LOCAL_CHANNEL_HEADER = "X-Botloom-Local-Channel"


class LocalSecret:
    """The process's token; `token` may be given (tests), else it is random."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(32)
        self._own_service_urls: set[str] = set()

    def matches(self, given: str) -> bool:
        """Whether `given` is the token (constant time; any characters)."""
        return bool(given) and secrets.compare_digest(
            self.token.encode(), given.encode("utf-8", "surrogateescape")
        )

    def admits_bearer(self, authorization: str) -> bool:
        """Whether an `Authorization` header is `Bearer <token>`."""
        scheme, _, given = authorization.partition(" ")
        return scheme.lower() == "bearer" and self.matches(given.strip())

    def add_own_service_url(self, service_url: str) -> None:
        """Record a service URL that reaches this process (the local Direct Line's own)."""
        self._own_service_urls.add(service_url.rstrip("/"))

    def headers_for(self, service_url: str) -> dict[str, str]:
        """The bearer header for a reply to `service_url` when it is this process's own, else
        none (the token is never sent anywhere else)."""
        if service_url.rstrip("/") in self._own_service_urls:
            return {"Authorization": f"Bearer {self.token}"}
        return {}
