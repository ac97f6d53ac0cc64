"""What a foreign web page must not do to a server without tokens (the local Direct Line, and
/api/messages in anonymous mode).

- A cross-site "simple" request (text/plain, form data) needs no CORS preflight: every body must
  be JSON, so such a POST is refused (415) before it is read.
- Under DNS rebinding a page's own host name resolves to this machine, so the browser sends its
  requests here with ``Host: evil.example``: the Host must be a loopback name or address, the
  address the request reached (this server listens there), or a name in BOTLOOM_ALLOWED_HOSTS.
- A browser names the page that sent a request in ``Origin``: when present it must be this
  server itself (``http(s)://<Host>``) or one of BOTLOOM_ALLOWED_ORIGINS (a reverse proxy's).
  Clients that are not browsers (the Emulator, botloom itself, curl) send none.

Refusals are 403 (or 415) with a short reason; nothing is created or forwarded.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from bot.security.service_urls import is_loopback_host

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def host_name(host: str) -> str | None:
    """The name or address in a Host header (no port, no brackets, lower case), or None."""
    try:
        name = urlsplit(f"//{host}").hostname
    except ValueError:
        return None
    return name.rstrip(".").lower() if name else None


class OriginGuard:
    """Checks Host, Origin and the content type of requests (see the module's docstring)."""

    def __init__(
        self, allowed_hosts: tuple[str, ...] = (), allowed_origins: tuple[str, ...] = ()
    ) -> None:
        self._hosts = {h for h in (host_name(entry) for entry in allowed_hosts) if h}
        self._origins = {o.strip().rstrip("/").lower() for o in allowed_origins if o.strip()}

    def check(self, request: web.Request, *, multipart: bool = False) -> None:
        """Raise 403 for a foreign Host or Origin, 415 for a body that is not JSON (`multipart`:
        or multipart/form-data with an Authorization header, which a foreign page cannot send
        without a CORS preflight that this server never grants)."""
        host = request.headers.get("Host", "")
        if not self._host_allowed(host, request):
            raise web.HTTPForbidden(text="this server does not answer to that Host")
        origin = request.headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin, host, request):
            raise web.HTTPForbidden(text="cross-origin requests are not allowed")
        if request.method in ("POST", "PUT", "PATCH") and _has_body(request):
            uploads = multipart and request.content_type == "multipart/form-data"
            if uploads and "Authorization" not in request.headers:
                raise web.HTTPForbidden(text="an upload needs the conversation's token")
            if not uploads and not _is_json(request.content_type):
                raise web.HTTPUnsupportedMediaType(text="Content-Type must be application/json")

    def wrap(self, handler: Handler, *, multipart: bool = False) -> Handler:
        """`handler`, checked first."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            self.check(request, multipart=multipart)
            return await handler(request)

        return guarded

    def _host_allowed(self, host: str, request: web.Request) -> bool:
        name = host_name(host)
        if name is None:
            return False
        if is_loopback_host(name) or name in self._hosts:
            return True
        return _is_address(name) and name == _local_address(request)

    def _origin_allowed(self, origin: str, host: str, request: web.Request) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self._origins:
            return True
        scheme = "https" if request.secure else "http"
        return origin == f"{scheme}://{host.lower()}"


def _has_body(request: web.Request) -> bool:
    if request.content_length is not None:
        return request.content_length > 0
    return request.body_exists


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _local_address(request: web.Request) -> str | None:
    """The address of this server that the request reached."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        return None
    try:
        address = ipaddress.ip_address(str(sockname[0]).split("%")[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # a dual-stack socket on "::"
    return str(mapped or address)
