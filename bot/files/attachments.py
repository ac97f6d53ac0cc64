"""Which attachments of a message are files, as each channel sends them.

- Emulator, Direct Line, Web Chat: `contentUrl`, `name` and `contentType` (a browser may send an
  empty or generic type: the file name's extension decides then).
- Teams (one-to-one chats): `application/vnd.microsoft.teams.file.download.info`, downloaded
  from `content.downloadUrl` (its `contentUrl` needs a token); Teams also attaches a `text/html`
  copy of the message text, which is not a file.
Cards and other attachments without a URL are not files.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from botbuilder.schema import Activity

from bot.knowledge.readers import READERS
from dialogs.files import Refusal

TEAMS_FILE = "application/vnd.microsoft.teams.file.download.info"
# What each content type is read as, when the name has no extension a reader knows.
TYPE_EXTENSIONS = {
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "text/html": ".html",
    "text/plain": ".txt",
}
ARCHIVE_EXTENSIONS = frozenset(".zip .7z .rar .tar .gz .tgz .bz2 .xz .zst".split())
ARCHIVE_TYPES = frozenset(
    "application/zip application/x-zip-compressed application/x-7z-compressed "
    "application/vnd.rar application/x-rar-compressed application/x-tar application/gzip "
    "application/x-gzip".split()
)
KINDS = "PDF, Word (.docx), Markdown, HTML and text"


@dataclass(frozen=True)
class FileRef:
    """A file attached to a message: where to download it, and what it is read as (`extension`,
    a key of the readers) or why it is not read at all (`refusal`)."""

    name: str
    url: str
    extension: str = ""
    refusal: Refusal | None = None


def file_attachments(activity: Activity) -> list[FileRef]:
    """The message's files, in order (refused ones too, with the reason)."""
    found = []
    for attachment in activity.attachments or []:
        content_type = (attachment.content_type or "").strip().lower()
        if content_type == TEAMS_FILE:
            content = _mapping(attachment.content)
            url = str(content.get("downloadUrl") or "")
            file_type = str(content.get("fileType") or "")
            name = attachment.name or f"file.{file_type or 'bin'}"
        elif attachment.content_url and not content_type.startswith("application/vnd.microsoft"):
            url, name = attachment.content_url, attachment.name or _name_in(attachment.content_url)
        else:  # a card, Teams' HTML copy of the text (no URL), a mention...
            continue
        if not url:
            continue
        found.append(classify(name, content_type, url))
    return found


def classify(name: str, content_type: str, url: str) -> FileRef:
    """What a file named `name`, sent as `content_type`, is read as, or why not."""
    content_type = content_type.split(";")[0].strip().lower()
    extension = PurePosixPath(name.lower()).suffix
    if extension in READERS:
        return FileRef(name, url, extension)
    if content_type.startswith("image/") or _guessed(extension).startswith("image/"):
        return FileRef(name, url, refusal=Refusal.IMAGE)
    if extension in ARCHIVE_EXTENSIONS or content_type in ARCHIVE_TYPES:
        return FileRef(name, url, refusal=Refusal.ARCHIVE)
    typed = TYPE_EXTENSIONS.get(content_type)
    if typed:
        return FileRef(name, url, typed)
    return FileRef(name, url, refusal=Refusal.KIND)


def _guessed(extension: str) -> str:
    return mimetypes.types_map.get(extension, "") if extension else ""


def _mapping(content: Any) -> dict[str, Any]:
    if isinstance(content, dict):
        return content
    return dict(vars(content)) if content is not None and hasattr(content, "__dict__") else {}


def _name_in(url: str) -> str:
    return unquote(PurePosixPath(urlsplit(url).path).name) or "file"
