"""Two replicas update one user's memory at the same moment: both updates survive (etags).

Each replica has its own storage client on the same database (SQLite file, PostgreSQL, Redis);
a gate makes both read the same version before either writes, so one write must conflict and
be applied again on the newer version.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from botbuilder.core import Storage, TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import Activity, ChannelAccount, ConversationAccount

from bot.storage import StorageConflictError
from dialogs.memory.user_facts import remembered
from dialogs.memory.user_store import USER_IDENTITY_KEY, UserMemory
from tests.bot.storage.test_storage import STORAGES, Opener, close


class Gate:
    """Holds every reader of user memory until `count` of them have read."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.reads = 0
        self.open = asyncio.Event()

    async def passed(self) -> None:
        self.reads += 1
        if self.reads >= self.count:
            self.open.set()
        await asyncio.wait_for(self.open.wait(), 10)


class GatedStorage(Storage):
    """A replica's storage client whose reads of user memory wait at a shared gate."""

    def __init__(self, inner: Storage, gate: Gate) -> None:
        self.inner, self.gate = inner, gate

    async def read(self, keys: list[str]) -> dict[str, Any]:
        items = await self.inner.read(keys)
        await self.gate.passed()
        return items

    async def write(self, changes: dict[str, Any]) -> None:
        await self.inner.write(changes)

    async def delete(self, keys: list[str]) -> None:
        await self.inner.delete(keys)


def turn_of(user: str, conversation: str) -> TurnContext:
    activity = Activity(
        type="message",
        channel_id="msteams",
        conversation=ConversationAccount(id=conversation),
        from_property=ChannelAccount(id=f"29:{conversation}", aad_object_id=user),
        recipient=ChannelAccount(id="bot"),
    )
    context = TurnContext(TestAdapter(), activity)
    context.turn_state[USER_IDENTITY_KEY] = f"msteams/users/aad:{user}"  # as the endpoint vouches
    return context


@pytest.fixture(params=sorted(STORAGES))
async def place(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    async with STORAGES[request.param](tmp_path) as open_one:
        yield open_one


async def test_two_replicas_updating_one_users_memory_both_survive(place: Opener) -> None:
    first, second = place(), place()
    try:
        setup = UserMemory(first, conflicts=(StorageConflictError,))
        await setup.add(turn_of("aad-1", "setup"), [remembered("my locker is 12")])  # type: ignore[list-item]
        gate = Gate(count=2)
        replicas = [
            UserMemory(GatedStorage(store, gate), conflicts=(StorageConflictError,))
            for store in (first, second)
        ]
        await asyncio.gather(
            replicas[0].add(turn_of("aad-1", "chat-a"), [remembered("my car is red")]),  # type: ignore[list-item]
            replicas[1].add(turn_of("aad-1", "team-b"), [remembered("my bike is blue")]),  # type: ignore[list-item]
        )
        assert gate.reads == 3, "both read one version; the one that lost read again"
        kept = [item["text"] for item in await setup.facts(turn_of("aad-1", "later"))]
        assert sorted(kept) == [
            "The user's bike is blue.",
            "The user's car is red.",
            "The user's locker is 12.",
        ]
    finally:
        await close(first)
        await close(second)
