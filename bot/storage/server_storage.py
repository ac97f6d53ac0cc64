"""What the storages on a database server (PostgreSQL, Redis) share: where the server is, a
namespace, a timeout, and how "cannot reach it" is worded (never with the password)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from botbuilder.core import Storage

from bot.storage.backend import Backend
from bot.storage.errors import StorageUnavailable
from bot.storage.urls import check_namespace, scrub, where


class ServerStorage(Storage):
    """A botbuilder `Storage` on a server at `url`, with up to `max_connections` pooled
    connections (None: the server's default) and `timeout_s` for each operation. Subclasses name
    the server and its defaults, and set up their client in `_prepare`."""

    server: ClassVar[str]  # "PostgreSQL", "Redis"
    default_port: ClassVar[int]
    default_max_connections: ClassVar[int]
    backend_type: ClassVar[
        Callable[[Any], Backend]
    ]  # what lives beside it (bot.storage.backend_of)

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "botloom",
        max_connections: int | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self._url = url
        self.where = where(url, self.default_port)  # host:port/database, no credentials
        self.namespace = check_namespace(namespace)
        self._max_connections = max_connections or self.default_max_connections
        self._timeout_s = timeout_s
        self._closed = False
        self._prepare()

    def _prepare(self) -> None:
        """Set up the client (no I/O: connections open on `open()` or first use)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where!r}, namespace={self.namespace!r})"

    def unavailable(self, error: BaseException) -> StorageUnavailable:
        """The error for an unreachable server, its reason scrubbed of the URL's secrets."""
        reason = scrub(str(error) or type(error).__name__, self._url)
        return StorageUnavailable(f"cannot reach {self.server} at {self.where}: {reason}")
