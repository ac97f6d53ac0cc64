"""Pending approvals in the bot's storage, so they survive a restart and any replica can take the
click; each is claimed once by an optimistic write (the storage's etag), so a call runs exactly
once however often the button is pressed or the click delivered.

Every backend checks the etag atomically: SQLite, PostgreSQL (`UPDATE … WHERE etag`) and Redis (a
Lua script) raise StorageConflictError, botbuilder's MemoryStorage raises KeyError.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from botbuilder.core import Storage

from bot.storage.errors import StorageConflictError

PREFIX = "botloom/tool-approval/"
LATEST = "botloom/tool-approval-latest/"
CONFLICTS = (StorageConflictError, KeyError)


@dataclass(frozen=True)
class Claim:
    """What a press of approve or reject did: `result` "run" (the presser must run the call now;
    nobody else will), "rejected" (now), "done" (decided before: `record` says how), "expired",
    "not_yours" or "unknown"."""

    result: str
    record: dict[str, Any]


class PendingApprovals:
    def __init__(self, storage: Storage, *, expiry_s: float = 600.0) -> None:
        self._storage = storage
        self.expiry_s = expiry_s

    async def create(
        self,
        *,
        conversation: str,
        user: str,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        summary: str,
    ) -> dict[str, Any]:
        now = time.time()
        record = {
            "id": uuid.uuid4().hex,
            "conversation": conversation,
            "user": user,
            "server": server,
            "tool": tool,
            "arguments": arguments,
            "summary": summary,
            "created": now,
            "expires": now + self.expiry_s,
            "state": "pending",
            "outcome": "",
        }
        await self._storage.write(
            {PREFIX + record["id"]: dict(record), LATEST + conversation: {"id": record["id"]}}
        )
        return record

    async def get(self, approval_id: str) -> dict[str, Any] | None:
        found = await self._storage.read([PREFIX + approval_id])
        return found.get(PREFIX + approval_id)

    async def latest(self, conversation: str) -> dict[str, Any] | None:
        """The conversation's latest approval that still waits, if any."""
        found = await self._storage.read([LATEST + conversation])
        pointer = found.get(LATEST + conversation)
        if not pointer:
            return None
        record = await self.get(pointer["id"])
        return record if record and record["state"] == "pending" else None

    async def claim(self, approval_id: str, user: str, approve: bool) -> Claim:
        """Decide the approval for `user`, once. Only the user who asked may decide."""
        record = await self.get(approval_id)
        if record is None:
            return Claim("unknown", {})
        if record["state"] != "pending":
            return Claim("done", record)
        if record["user"] != user:
            return Claim("not_yours", record)
        expired = time.time() > record["expires"]
        record["state"] = "expired" if expired else "running" if approve else "rejected"
        try:  # the etag read above: a second press, here or on another replica, loses
            await self._storage.write({PREFIX + approval_id: record})
        except CONFLICTS:
            return Claim("done", await self.get(approval_id) or record)
        if expired:
            return Claim("expired", record)
        return Claim("run" if approve else "rejected", record)

    async def finish(self, record: dict[str, Any], state: str, outcome: str) -> None:
        """Keep how a claimed call ended (for a later press: "done")."""
        record = {**record, "state": state, "outcome": outcome, "e_tag": "*"}
        await self._storage.write({PREFIX + record["id"]: record})
