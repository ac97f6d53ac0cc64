"""The files uploaded to the local Direct Line, kept in this process per conversation.

A conversation keeps its newest `per_conversation` files and at most `conversation_bytes` of
them, its own oldest dropped first. The files of conversations that have ended go at the next
upload. The store keeps `total_bytes` in all, and never makes room by dropping another live
conversation's files: files that do not fit are refused (FilesFull).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class UploadedFile:
    conversation_id: str
    name: str
    content_type: str
    data: bytes


class FilesFull(Exception):
    """The files would pass the store's total; nothing was kept."""


class FileStore:
    """Uploaded files by id, bounded per conversation and in all (see the module's docstring).
    `ended(conversation_id)` tells whether a conversation is over (its files may go)."""

    def __init__(
        self,
        ended: Callable[[str], bool],
        *,
        per_conversation: int,
        conversation_bytes: int,
        total_bytes: int,
    ) -> None:
        self._ended = ended
        self.per_conversation = per_conversation
        self.conversation_bytes = conversation_bytes
        self.total_bytes = max(total_bytes, conversation_bytes)
        self._by_conversation: dict[str, OrderedDict[str, UploadedFile]] = {}
        self._files: dict[str, UploadedFile] = {}  # every kept file, by id
        self._kept_bytes = 0

    def get(self, file_id: str) -> UploadedFile | None:
        return self._files.get(file_id)

    def keep(self, conversation_id: str, files: Sequence[tuple[str, UploadedFile]]) -> None:
        """Keep `files` (id, file) of one conversation, all or none: ValueError for more than
        one conversation may keep, FilesFull when the store has no room for them."""
        if not files:
            return
        self._drop_ended()  # ended conversations' files go first, whether or not room is short
        size = sum(len(f.data) for _, f in files)
        if len(files) > self.per_conversation or size > self.conversation_bytes:
            raise ValueError("more files than one conversation may keep")
        own = self._by_conversation.get(conversation_id, OrderedDict())
        dropped = self._oldest_to_drop(own, len(files), size)
        freed = sum(len(own[file_id].data) for file_id in dropped)
        if self._kept_bytes - freed + size > self.total_bytes:
            raise FilesFull("too many files are kept on this server; try again later")
        for file_id in dropped:
            self._kept_bytes -= len(own.pop(file_id).data)
            del self._files[file_id]
        for file_id, uploaded in files:
            own[file_id] = self._files[file_id] = uploaded
            self._kept_bytes += len(uploaded.data)
        self._by_conversation[conversation_id] = own

    def _oldest_to_drop(
        self, own: OrderedDict[str, UploadedFile], count: int, size: int
    ) -> list[str]:
        """The conversation's oldest files that must go to make room for `count` more files of
        `size` bytes."""
        files, kept_bytes, dropped = len(own), sum(len(f.data) for f in own.values()), []
        for file_id, uploaded in own.items():
            fits = kept_bytes + size <= self.conversation_bytes
            if fits and files + count <= self.per_conversation:
                break
            dropped.append(file_id)
            files, kept_bytes = files - 1, kept_bytes - len(uploaded.data)
        return dropped

    def _drop_ended(self) -> None:
        for conversation_id in [c for c in self._by_conversation if self._ended(c)]:
            for file_id, uploaded in self._by_conversation.pop(conversation_id).items():
                self._kept_bytes -= len(uploaded.data)
                del self._files[file_id]
