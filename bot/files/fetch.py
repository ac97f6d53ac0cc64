"""Downloading an attached file, safely.

Only from the origin of the activity's `serviceUrl` (the Emulator, botloom's local Direct Line),
from `https://*.sharepoint.com` for Teams (where `downloadUrl` points), or from an origin in
BOTLOOM_ALLOWED_FILE_URLS; anything else is refused before any request is made. A redirect is
followed only within the same origin (a few times at most). The body is read in pieces and the
download stops once it passes the size limit, whatever `Content-Length` says; the whole download
has a deadline.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit
from urllib.request import url2pathname

import aiohttp

from bot.security.service_urls import service_url_allowed
from dialogs.files import Refusal

TEAMS_FILE_HOST_SUFFIX = ".sharepoint.com"
LOCAL_CHANNEL, LOCAL_SERVICE_URL = "console", "console://"  # botloom chat: `/file PATH`
MAX_REDIRECTS = 3
PIECE_BYTES = 64 * 1024


class FetchRefused(Exception):
    """The file was not downloaded (or not whole); `refusal` says why, `bytes_read` how much of
    it was read before stopping."""

    def __init__(self, refusal: Refusal, detail: str = "", bytes_read: int = 0) -> None:
        super().__init__(detail or refusal.value)
        self.refusal = refusal
        self.bytes_read = bytes_read


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 25 * 1024 * 1024
    timeout_s: float = 30.0
    allowed: tuple[str, ...] = ()  # BOTLOOM_ALLOWED_FILE_URLS: more origins (URL prefixes)


def origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def may_fetch(url: str, service_url: str, channel_id: str, allowed: tuple[str, ...]) -> bool:
    """Whether a file at `url` may be downloaded for an activity from `service_url` (a local
    file:// URL only in `botloom chat`, whose user is the one running the bot)."""
    if url.startswith("file://"):  # no HTTP activity has this serviceUrl (bot/security)
        return channel_id == LOCAL_CHANNEL and service_url == LOCAL_SERVICE_URL
    target = origin(url)
    if target is None:
        return False
    if target == origin(service_url or ""):
        return True
    scheme, host, _ = target
    if channel_id == "msteams" and scheme == "https" and host.endswith(TEAMS_FILE_HOST_SUFFIX):
        return True
    return bool(allowed) and service_url_allowed(url, allowed)


async def fetch(url: str, limits: FetchLimits) -> bytes:
    """The file's bytes; FetchRefused when it is over `limits.max_bytes`, the server answers
    with an error, redirects to another origin, or the deadline passes."""
    if url.startswith("file://"):
        return await asyncio.to_thread(_read_local, url, limits.max_bytes)
    read = 0
    try:
        async with asyncio.timeout(limits.timeout_s):
            async with aiohttp.ClientSession() as session:
                for _ in range(MAX_REDIRECTS + 1):
                    async with session.get(url, allow_redirects=False) as response:
                        if response.status in (301, 302, 303, 307, 308):
                            target = urljoin(url, response.headers.get("Location", ""))
                            if origin(target) != origin(url):
                                raise FetchRefused(Refusal.NOT_ALLOWED, "redirected elsewhere")
                            url = target
                            continue
                        if response.status != 200:
                            raise FetchRefused(Refusal.UNAVAILABLE, f"HTTP {response.status}")
                        length = response.content_length
                        if length is not None and length > limits.max_bytes:
                            raise FetchRefused(Refusal.TOO_LARGE)
                        pieces = []
                        async for piece in response.content.iter_chunked(PIECE_BYTES):
                            read += len(piece)
                            if read > limits.max_bytes:
                                raise FetchRefused(Refusal.TOO_LARGE, bytes_read=read)
                            pieces.append(piece)
                        return b"".join(pieces)
                raise FetchRefused(Refusal.UNAVAILABLE, "too many redirects")
    except TimeoutError:
        raise FetchRefused(Refusal.UNAVAILABLE, "timed out", read) from None
    except aiohttp.ClientError as error:
        raise FetchRefused(Refusal.UNAVAILABLE, type(error).__name__, read) from None


def _read_local(url: str, max_bytes: int) -> bytes:
    """A local file's bytes (at most `max_bytes` + 1 read)."""
    try:
        with open(url2pathname(urlsplit(url).path), "rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as error:
        raise FetchRefused(Refusal.UNAVAILABLE, error.strerror or "unreadable") from None
    if len(data) > max_bytes:
        raise FetchRefused(Refusal.TOO_LARGE, bytes_read=len(data))
    return data
