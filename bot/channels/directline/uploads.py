"""Web Chat's file upload on the local Direct Line, and the files served back to the bot.

`POST /v3/directline/conversations/{id}/upload?userId=…` (what Direct Line JS sends for a message
with attachments): a multipart body with the activity in a part of type
`application/vnd.microsoft.activity` and one part per file. Each file is kept in this process
under an unguessable id and the activity goes to the bot with `attachments` whose `contentUrl`
is `GET /v3/directline/files/{id}/{name}` on this server (the activity's serviceUrl origin, so
the bot may download it). Files are served as downloads (`Content-Disposition: attachment`,
`nosniff`, a sandbox CSP), never rendered as pages of this origin.

Bounds: a file keeps at most `max_file_bytes + 1` bytes (the rest of the part is read and
dropped, so the bot sees it is over the limit and says so); at most `max_files` files and
`max_total_bytes` are kept, the oldest dropped first.
"""

from __future__ import annotations

import json
import mimetypes
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from bot.channels.directline.webchat_api import LocalDirectLine

ACTIVITY_TYPE = "application/vnd.microsoft.activity"
PIECE_BYTES = 64 * 1024


@dataclass(frozen=True)
class UploadedFile:
    conversation_id: str
    name: str
    content_type: str
    data: bytes


class Uploads:
    """The upload handler and the files uploaded, for `service`'s conversations."""

    def __init__(
        self,
        service: LocalDirectLine,
        *,
        max_file_bytes: int,
        max_files: int = 100,
        max_total_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self._service = service
        self._max_file_bytes = max_file_bytes
        self._max_files = max_files
        self._max_total_bytes = max(max_total_bytes, max_file_bytes + 1)
        self._total_bytes = 0
        self._files: OrderedDict[str, UploadedFile] = OrderedDict()

    async def upload(self, request: web.Request) -> web.Response:
        conversation, _ = self._service.authorized(request)
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError):
            raise web.HTTPBadRequest(text="body must be multipart/form-data") from None
        activity: dict | None = None
        attachments = []
        base = self._service.own_base(request)  # the serviceUrl the bot gets
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise web.HTTPBadRequest(text="nested multipart bodies are not accepted")
            content_type = part.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type == ACTIVITY_TYPE or (part.name == "activity" and not part.filename):
                activity = _activity(await self._bounded(part))
                continue
            name = (part.filename or part.name or "file").replace("/", "_")[:200]
            if content_type in ("", "application/octet-stream"):
                content_type = mimetypes.guess_type(name)[0] or content_type
            file_id = secrets.token_urlsafe(18)
            self._keep(
                file_id,
                UploadedFile(conversation.id, name, content_type, await self._bounded(part)),
            )
            url = f"{base}/v3/directline/files/{file_id}/{quote(name)}"
            attachments.append({"contentType": content_type, "contentUrl": url, "name": name})
        if activity is None:
            raise web.HTTPBadRequest(text=f"no part of type {ACTIVITY_TYPE}")
        # Web Chat describes the files in the activity (type and name, no URL): the uploaded
        # files, in the same order, take their place (a described type fills in an empty one).
        described = [a for a in activity.get("attachments") or [] if isinstance(a, dict)]
        for attachment, description in zip(attachments, described, strict=False):
            if attachment["contentType"] in ("", "application/octet-stream"):
                attachment["contentType"] = str(description.get("contentType") or "")
        activity["attachments"] = attachments
        return web.json_response({"id": self._service.accept(request, conversation, activity)})

    async def file(self, request: web.Request) -> web.Response:
        """GET /v3/directline/files/{file}/{name}: an uploaded file, as a download."""
        uploaded = self._files.get(request.match_info["file"])
        if uploaded is None or self._service.store.get(uploaded.conversation_id) is None:
            raise web.HTTPNotFound(text="no such file")
        return web.Response(
            body=uploaded.data,
            content_type=uploaded.content_type or "application/octet-stream",
            headers={
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(uploaded.name)}",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "sandbox",
            },
        )

    async def _bounded(self, part: BodyPartReader) -> bytes:
        """The part's bytes, at most `max_file_bytes + 1` of them (the rest is read and dropped)."""
        kept = bytearray()
        while piece := await part.read_chunk(PIECE_BYTES):
            if len(kept) <= self._max_file_bytes:
                kept += piece[: self._max_file_bytes + 1 - len(kept)]
        return bytes(kept)

    def _keep(self, file_id: str, uploaded: UploadedFile) -> None:
        self._files[file_id] = uploaded
        self._total_bytes += len(uploaded.data)
        while len(self._files) > self._max_files or self._total_bytes > self._max_total_bytes:
            _, dropped = self._files.popitem(last=False)
            self._total_bytes -= len(dropped.data)


def _activity(data: bytes) -> dict:
    try:
        activity = json.loads(data)
    except ValueError:
        raise web.HTTPBadRequest(text="the activity part must be JSON") from None
    if not isinstance(activity, dict) or not isinstance(activity.get("type"), str):
        raise web.HTTPBadRequest(text="the activity part must be an activity with a type")
    return activity
