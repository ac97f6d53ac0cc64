"""What the turn runner is given (how an inbox entry becomes a turn, its limits), the work it
keeps for each conversation, and what it raises when it cannot take more (bot/turns/runner.py)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.storage import InboxEntry

Turn = Callable[[], Awaitable[Any]]


class TurnTimedOut(Exception):
    """A synchronous turn (`TurnRunner.call`) ran past `turn_timeout_s` and was stopped."""


class RunnerBusy(Exception):
    """Too many turns are queued (or the runner is draining); the channel should retry later."""


class ConversationBusy(RunnerBusy):
    """This conversation has its whole share of the queue waiting; other conversations are
    still admitted."""


class EntryTurns(Protocol):
    """How an inbox entry becomes a turn (bot/turns/inbox_entries.py)."""

    async def run(self, entry: InboxEntry) -> None:
        """The entry's turn."""

    async def say_one_moment(self, entry: InboxEntry) -> None:
        """Tell the user their message waits behind a turn that another replica is running."""


@dataclass(frozen=True)
class RunnerLimits:
    max_queued: int = 1000  # turns waiting or running in this process, all conversations
    max_queued_per_conversation: int = 20  # ... of one conversation: its share of max_queued
    turn_timeout_s: float = 90.0  # a turn (model, storage, replies) is cancelled after this
    lock_wait_s: float = 10.0  # how long a turn waits for another process's lock
    dedupe_window: int = 10_000  # how many recent activity ids are remembered
    # Entries that waited this long while no replica worked on their conversation are taken up
    # by any replica (their replica died); the inbox is looked at every sweep_s.
    orphaned_after_s: float = 8.0
    sweep_s: float = 4.0


@dataclass
class ConversationWork:
    """This process's work on one conversation."""

    mine: dict[int, InboxEntry] = field(default_factory=dict)  # accepted here, not yet run
    told_to_wait: set[int] = field(default_factory=set)
    calls: deque[tuple[Turn, asyncio.Future[Any]]] = field(default_factory=deque)  # synchronous
    adopted: bool = False  # taken up by the sweep: run what waits, whoever accepted it
    worker: asyncio.Task[None] | None = None
