"""Web Chat's file upload on the local Direct Line, and the files served back to the bot.

`POST /v3/directline/conversations/{id}/upload?userId=…` (what Direct Line JS sends for a message
with attachments): a multipart body with the activity in a part of type
`application/vnd.microsoft.activity` and one part per file. Each file is kept in this process
under an unguessable id and the activity goes to the bot with `attachments` whose `contentUrl`
is `GET /v3/directline/files/{id}/{name}` on this server (the activity's serviceUrl origin, so
the bot may download it). Files are served as downloads (`Content-Disposition: attachment`,
`nosniff`, a sandbox CSP), never rendered as pages of this origin.

Bounds (aiohttp's client_max_size does not apply to multipart reads): an upload carries at most
MAX_UPLOAD_FILES files, an activity part of at most `max_activity_bytes`, and at most
`max_request_bytes` of parts in all (default four files' worth): past them it is refused with 413
and nothing is kept. A file keeps at most `max_file_bytes + 1` bytes (the rest of the part is read
and dropped, so the bot sees it is over the limit and says so). Kept files are bounded per
conversation and in all, one conversation never evicting another's (file_store.py).
"""

from __future__ import annotations

import json
import mimetypes
import secrets
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from bot.channels.directline.file_store import FilesFull, FileStore, UploadedFile
from bot.channels.directline.webchat_api import LocalDirectLine

ACTIVITY_TYPE = "application/vnd.microsoft.activity"
PIECE_BYTES = 64 * 1024
MAX_UPLOAD_FILES = 32  # files in one upload, and kept per conversation
FILES_PER_UPLOAD_BYTES = 4  # an upload's parts may take this many files' worth of bytes


class Uploads:
    """The upload handler and the files uploaded, for `service`'s conversations."""

    def __init__(
        self,
        service: LocalDirectLine,
        *,
        max_file_bytes: int,
        max_activity_bytes: int = 1024 * 1024,
        max_request_bytes: int | None = None,
        max_total_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self._service = service
        self._max_file_bytes = max_file_bytes
        self._max_activity_bytes = max_activity_bytes
        self._max_request_bytes = max_request_bytes or (
            FILES_PER_UPLOAD_BYTES * (max_file_bytes + 1) + max_activity_bytes
        )
        self.files = FileStore(
            self._ended,
            per_conversation=MAX_UPLOAD_FILES,
            conversation_bytes=self._max_request_bytes,
            total_bytes=max_total_bytes,
        )

    async def upload(self, request: web.Request) -> web.Response:
        conversation, _ = self._service.authorized(request)
        limit = self._max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _too_large(f"an upload may carry at most {limit} bytes")
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError):
            raise web.HTTPBadRequest(text="body must be multipart/form-data") from None
        activity: dict | None = None
        attachments: list[dict[str, str]] = []
        kept: list[tuple[str, UploadedFile]] = []
        budget = _Budget(limit)
        base = self._service.own_base(request)  # the serviceUrl the bot gets
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise web.HTTPBadRequest(text="nested multipart bodies are not accepted")
            content_type = part.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type == ACTIVITY_TYPE or (part.name == "activity" and not part.filename):
                if activity is not None:
                    raise web.HTTPBadRequest(text="an upload carries one activity part")
                data = await budget.read(part, self._max_activity_bytes)
                if len(data) > self._max_activity_bytes:
                    raise _too_large(f"the activity part is over {self._max_activity_bytes} bytes")
                activity = _activity(data)
                continue
            if len(kept) == MAX_UPLOAD_FILES:
                raise _too_large(f"an upload may carry at most {MAX_UPLOAD_FILES} files")
            name = (part.filename or part.name or "file").replace("/", "_")[:200]
            if content_type in ("", "application/octet-stream"):
                content_type = mimetypes.guess_type(name)[0] or content_type
            file_id = secrets.token_urlsafe(18)
            data = await budget.read(part, self._max_file_bytes)
            kept.append((file_id, UploadedFile(conversation.id, name, content_type, data)))
            url = f"{base}/v3/directline/files/{file_id}/{quote(name)}"
            attachments.append({"contentType": content_type, "contentUrl": url, "name": name})
        if activity is None:
            raise web.HTTPBadRequest(text=f"no part of type {ACTIVITY_TYPE}")
        try:
            self.files.keep(conversation.id, kept)
        except FilesFull as full:
            raise web.HTTPServiceUnavailable(
                text=str(full), headers={"Retry-After": "60"}
            ) from None
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
        uploaded = self.files.get(request.match_info["file"])
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

    def _ended(self, conversation_id: str) -> bool:
        """Whether a conversation is over (gone, or its tokens all expired)."""
        conversation = self._service.store.get(conversation_id)
        return conversation is None or conversation.expires() <= self._service.store.clock()


class _Budget:
    """The bytes an upload's parts may still take; 413 once they are spent."""

    def __init__(self, limit: int) -> None:
        self.limit = self.left = limit

    async def read(self, part: BodyPartReader, keep: int) -> bytes:
        """The part's bytes, at most `keep + 1` of them (the rest is read and dropped)."""
        kept = bytearray()
        while piece := await part.read_chunk(PIECE_BYTES):
            self.left -= len(piece)
            if self.left < 0:
                raise _too_large(f"an upload may carry at most {self.limit} bytes")
            if len(kept) <= keep:
                kept += piece[: keep + 1 - len(kept)]
        return bytes(kept)


def _too_large(reason: str) -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(0, text=reason)


def _activity(data: bytes) -> dict:
    try:
        activity = json.loads(data)
    except ValueError:
        raise web.HTTPBadRequest(text="the activity part must be JSON") from None
    if not isinstance(activity, dict) or not isinstance(activity.get("type"), str):
        raise web.HTTPBadRequest(text="the activity part must be an activity with a type")
    return activity
