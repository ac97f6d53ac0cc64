"""A conversation's files, kept in the bot's storage (so they survive a restart and every replica
sees them): one record per conversation with the files' chunks and their vectors.

A file is added with one write, after it was read and embedded whole: a file that fails half-way
leaves nothing behind. The collection is bounded: files older than `ttl_s` are left out (and
dropped at the next write), and beyond `max_files` files or `max_chunks` chunks the oldest files
go first. A conversation that never comes back is not written again, so each added file is also
listed under the hour it expires (`files-expiring/<hour>`), and `sweep` (every replica runs it
hourly: bot/files/setup.py) drops the expired files of the collections listed under past hours.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from botbuilder.core import Storage

from bot.files.search import FileChunks
from bot.storage import StorageConflictError
from bot.storage.errors import pause_after_conflict
from bot.storage.knowledge import StoredChunk
from bot.storage.values import ABSENT, etag_of

logger = logging.getLogger(__name__)

EXPIRING = "files-expiring"  # EXPIRING/<hour>: the collections with a file expiring that hour
SWEPT = f"{EXPIRING}/next"  # the first hour not swept yet
CATCH_UP_HOURS = 24 * 90  # after a long stop, the hours looked back at (older are left)
WRITE_TRIES = 5


@dataclass(frozen=True)
class CollectionLimits:
    ttl_s: float = 24 * 3600.0
    max_files: int = 5
    max_chunks: int = 1000


@dataclass(frozen=True)
class NewFile:
    """A file read and embedded, ready to be kept."""

    name: str
    pages: int | None
    texts: Sequence[tuple[str, str, int | None]]  # (text, heading, page) per chunk
    vectors: np.ndarray  # (chunks, dimension), unit rows
    model: str  # the embedding model's name


def collection_key(channel_id: str, conversation_id: str) -> str:
    return f"files/{channel_id}/{conversation_id}"


class FileCollections:
    """The conversations' file collections in `storage`."""

    def __init__(
        self,
        storage: Storage,
        limits: CollectionLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._limits = limits or CollectionLimits()
        self._clock = clock

    async def add(self, key: str, new: NewFile) -> None:
        record = await self._current(key)
        file_id = f"{int(self._clock() * 1000):x}-{len(record['files'])}"
        record["files"].append(
            {"id": file_id, "name": new.name, "pages": new.pages, "added_at": self._clock()}
        )
        vectors = _vectors(record)
        if record.get("model") not in (None, new.model) or (
            vectors.size and vectors.shape[1] != new.vectors.shape[1]
        ):  # another embedding model made the old vectors: those files are dropped
            kept = {file_id}
            record = {"files": [f for f in record["files"] if f["id"] in kept], "chunks": []}
            vectors = np.zeros((0, new.vectors.shape[1]), dtype=np.float32)
        record["chunks"] += [
            {"file": file_id, "text": t, "heading": h, "page": p} for t, h, p in new.texts
        ]
        vectors = np.vstack([vectors.reshape(-1, new.vectors.shape[1]), new.vectors])
        record, vectors = self._bounded(record, vectors)
        record["model"] = new.model
        record["vectors"] = base64.b64encode(vectors.astype("<f4").tobytes()).decode("ascii")
        record["dimension"] = int(vectors.shape[1])
        await self._storage.write({key: record})
        await self._list_expiry(key, self._clock() + self._limits.ttl_s)

    async def sweep(self) -> int:
        """Drop the expired files of the collections listed under the hours that have passed
        since the last sweep (by any replica); the number of collections changed."""
        now = _hour(self._clock())
        marker = (await self._storage.read([SWEPT])).get(SWEPT)
        start = int(marker["hour"]) if isinstance(marker, dict) and "hour" in marker else now
        changed = 0
        for hour in range(max(start, now - CATCH_UP_HOURS), now):  # hours wholly past
            bucket = f"{EXPIRING}/{hour}"
            listed = (await self._storage.read([bucket])).get(bucket)
            for key in listed.get("keys", []) if isinstance(listed, dict) else []:
                changed += await self._drop_expired(key)
            await self._storage.delete([bucket])
        await self._storage.write({SWEPT: {"hour": now}})
        return changed

    async def _drop_expired(self, key: str) -> int:
        """1 where expired files were dropped from `key`'s record, written on the version read
        (a turn writing meanwhile wins: its own write drops them)."""
        found = (await self._storage.read([key])).get(key)
        if not isinstance(found, dict):
            return 0
        current = self._unexpired(found)
        if len(current["files"]) == len(found.get("files", [])):
            return 0
        if not current["files"]:  # nothing left: no text or vectors kept
            current = {"files": [], "chunks": []}
        current["e_tag"] = etag_of(found) or ABSENT
        try:
            await self._storage.write({key: current})
        except (StorageConflictError, KeyError):
            return 0
        return 1

    async def _list_expiry(self, key: str, expires_at: float) -> None:
        bucket = f"{EXPIRING}/{_hour(expires_at)}"
        for attempt in range(WRITE_TRIES):
            listed = (await self._storage.read([bucket])).get(bucket)
            keys = list(listed.get("keys", [])) if isinstance(listed, dict) else []
            if key in keys:
                return
            value = {"keys": [*keys, key], "e_tag": etag_of(listed) or ABSENT}
            try:
                await self._storage.write({bucket: value})
                return
            except (StorageConflictError, KeyError):  # another conversation listed meanwhile
                await pause_after_conflict(attempt)
        logger.warning(
            "could not list %s under %s: its files expire at its next write", key, bucket
        )

    async def chunks(self, key: str) -> FileChunks:
        record = await self._current(key)
        names = {f["id"]: f["name"] for f in record["files"]}
        chunks = [
            StoredChunk(
                id=index,
                document_id=f"file:{chunk['file']}",
                title=names[chunk["file"]],
                source=f"file:{names[chunk['file']]}",
                url="",
                text=chunk["text"],
                heading=chunk["heading"],
                page=chunk["page"],
            )
            for index, chunk in enumerate(record["chunks"])
        ]
        return FileChunks(chunks, _vectors(record))

    async def names(self, key: str) -> list[str]:
        return [f["name"] for f in (await self._current(key))["files"]]

    async def forget(self, key: str) -> int:
        count = len((await self._current(key))["files"])
        await self._storage.delete([key])
        return count

    async def _current(self, key: str) -> dict[str, Any]:
        """The stored record, without the files that expired."""
        return self._unexpired((await self._storage.read([key])).get(key))

    def _unexpired(self, found: Any) -> dict[str, Any]:
        record = dict(found) if isinstance(found, dict) else {}
        record.pop("e_tag", None)
        record.setdefault("files", [])
        record.setdefault("chunks", [])
        oldest = self._clock() - self._limits.ttl_s
        expired = {f["id"] for f in record["files"] if f["added_at"] < oldest}
        return _without(record, expired) if expired else record

    def _bounded(self, record: dict[str, Any], vectors: np.ndarray) -> tuple[dict, np.ndarray]:
        """The newest files within max_files and max_chunks (the newest one always kept)."""
        limits = self._limits
        while len(record["files"]) > 1 and (
            len(record["files"]) > limits.max_files or len(record["chunks"]) > limits.max_chunks
        ):
            oldest = record["files"][0]["id"]
            keep = [c["file"] != oldest for c in record["chunks"]]
            record = _without(record, {oldest})
            vectors = vectors[np.array(keep, dtype=bool)] if keep else vectors
        if len(record["chunks"]) > limits.max_chunks:  # one file alone: its first chunks
            record["chunks"] = record["chunks"][: limits.max_chunks]
            vectors = vectors[: limits.max_chunks]
        return record, vectors


def _hour(at: float) -> int:
    return int(at // 3600)


def _without(record: dict[str, Any], file_ids: set[str]) -> dict[str, Any]:
    """`record` without those files, their chunks and their rows of vectors."""
    keep = [c["file"] not in file_ids for c in record["chunks"]]
    vectors = _vectors(record)
    kept = {
        **record,
        "files": [f for f in record["files"] if f["id"] not in file_ids],
        "chunks": [c for c, k in zip(record["chunks"], keep, strict=True) if k],
    }
    if vectors.shape[0] == len(keep) and "vectors" in record:
        rows = vectors[np.array(keep, dtype=bool)] if keep else vectors
        kept["vectors"] = base64.b64encode(rows.astype("<f4").tobytes()).decode("ascii")
    return kept


def _vectors(record: dict[str, Any]) -> np.ndarray:
    dimension = int(record.get("dimension") or 0)
    if not record.get("vectors") or dimension <= 0:
        return np.zeros((len(record.get("chunks", [])), 0), dtype=np.float32)
    raw = np.frombuffer(base64.b64decode(record["vectors"]), dtype="<f4")
    return raw.astype(np.float32).reshape(-1, dimension)
