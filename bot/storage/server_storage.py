"""What the storages on a database server (PostgreSQL, Redis) share: where the server is, a
namespace, a timeout, and how "cannot reach it" is worded (never with the password)."""

from __future__ import annotations

from typing import ClassVar

from botbuilder.core import Storage

from bot.storage.errors import StorageUnavailable
from bot.storage.urls import check_namespace, scrub, where


class ServerStorage(Storage):
    """A botbuilder `Storage` on a server at `url`; subclasses name the server and its port."""

    server: ClassVar[str]  # "PostgreSQL", "Redis"
    default_port: ClassVar[int]

    def __init__(self, url: str, *, namespace: str, timeout_s: float) -> None:
        self._url = url
        self.where = where(url, self.default_port)  # host:port/database, no credentials
        self.namespace = check_namespace(namespace)
        self._timeout_s = timeout_s
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where!r}, namespace={self.namespace!r})"

    def unavailable(self, error: BaseException) -> StorageUnavailable:
        """The error for an unreachable server, its reason scrubbed of the URL's secrets."""
        reason = scrub(str(error) or type(error).__name__, self._url)
        return StorageUnavailable(f"cannot reach {self.server} at {self.where}: {reason}")
