"""`[Attachment=path-or-url contentType]` in a chatdown script: what a user sends, or what the
bot must send.

The source is a URL or a file relative to the script. The content type is a MIME type, one of
chatdown's shortcuts (`hero`, `adaptivecard`, …), or left out and guessed from the extension.
A user's local file is sent inline (a `.json` file as the card's content, anything else as a
data URL); a bot's attachment matches on content type and the URL, the `.json` file's content,
or the file's name.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botbuilder.schema import Attachment

from bot.scripted.expectations import AttachmentExpectation

CONTENT_TYPES = {
    "animation": "application/vnd.microsoft.card.animation",
    "audio": "application/vnd.microsoft.card.audio",
    "hero": "application/vnd.microsoft.card.hero",
    "receipt": "application/vnd.microsoft.card.receipt",
    "thumbnail": "application/vnd.microsoft.card.thumbnail",
    "signin": "application/vnd.microsoft.card.signin",
    "video": "application/vnd.microsoft.card.video",
    "adaptivecard": "application/vnd.microsoft.card.adaptive",
}
_URL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


@dataclass(frozen=True)
class AttachmentSpec:
    """A parsed `[Attachment=…]`: `local` is the file for a non-URL source."""

    source: str
    content_type: str | None
    local: Path | None

    @classmethod
    def parse(cls, value: str, base: Path) -> AttachmentSpec:
        """Read `path-or-url [contentType]`; ValueError for an unknown content type shortcut."""
        source, _, written = value.strip().partition(" ")
        written = written.strip().strip("\"'")
        if not written:
            content_type, _ = mimetypes.guess_type(source)
        elif "/" in written:
            content_type = written
        elif written.lower() in CONTENT_TYPES:
            content_type = CONTENT_TYPES[written.lower()]
        else:
            raise ValueError(
                f"unknown content type {written!r}: a MIME type or {', '.join(CONTENT_TYPES)}"
            )
        return cls(source, content_type, None if _URL.match(source) else base / source)

    def attachment(self) -> Attachment:
        """What a user sends; ValueError when the local file cannot be read."""
        if self.local is None:
            return Attachment(content_type=self.content_type, content_url=self.source)
        if self.local.suffix == ".json":
            return Attachment(content_type=self.content_type, content=self._json())
        try:
            data = base64.b64encode(self.local.read_bytes()).decode("ascii")
        except OSError as error:
            raise ValueError(f"cannot read attachment {self.local}: {error.strerror}") from None
        media_type = self.content_type or "application/octet-stream"
        url = f"data:{media_type};base64,{data}"
        return Attachment(content_type=media_type, content_url=url, name=self.local.name)

    def expectation(self) -> AttachmentExpectation:
        """What the bot must send; ValueError when a `.json` file cannot be read."""
        if self.local is None:
            return AttachmentExpectation(self.content_type, content_url=self.source)
        if self.local.suffix == ".json":
            return AttachmentExpectation(self.content_type, content=self._json())
        return AttachmentExpectation(self.content_type, name=self.local.name)

    def _json(self) -> Any:
        assert self.local is not None
        try:
            return json.loads(self.local.read_text(encoding="utf-8"))
        except OSError as error:
            raise ValueError(f"cannot read attachment {self.local}: {error.strerror}") from None
        except ValueError as error:
            raise ValueError(f"attachment {self.local} is not JSON: {error}") from None
