"""Runs turns in the background: one at a time per conversation, in acknowledgement order, across
replicas, and none lost when a replica dies.

Over 300 lines because the inbox's workers, the synchronous calls and the sweep of orphaned
entries share one lock discipline and one state per conversation (runner_terms.py holds the
terms they share); split apart, each would reach into the others' state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable
from functools import partial
from typing import Any

from bot.storage import ConversationLocks, Inbox, InboxEntry, LockTimeout, StorageUnavailable
from bot.turns.runner_terms import (
    ConversationBusy,
    ConversationWork,
    EntryTurns,
    RunnerBusy,
    RunnerLimits,
    Turn,
    TurnTimedOut,
)

__all__ = [
    "ConversationBusy",
    "EntryTurns",
    "RunnerBusy",
    "RunnerLimits",
    "TurnRunner",
    "TurnTimedOut",
]

logger = logging.getLogger(__name__)

ANSWERS_KEPT = 256  # synchronous answers kept for redeliveries (they come within seconds)


class TurnRunner:
    """Turns come from the shared inbox, oldest first, under the conversation's lock.

    `accept` stores an activity in the inbox (the endpoint answers 202 after that) and starts a
    worker for its conversation. A worker takes the conversation's lock in the shared store,
    runs the oldest waiting entry, whichever replica accepted it, removes it, releases the lock,
    and goes on until every entry this process accepted has run (here or on another replica).
    When the lock stays taken for `lock_wait_s`, the users whose messages wait are told so once,
    and the worker waits again. `call` runs a turn whose result the HTTP response carries
    (invokes, expectReplies) under the same lock, ahead of waiting entries. A periodic sweep
    takes up conversations whose entries nobody has run for `orphaned_after_s`: a replica died
    after acknowledging them, or the process restarted (SQLite).
    """

    def __init__(
        self, locks: ConversationLocks, inbox: Inbox, turns: EntryTurns, limits: RunnerLimits
    ) -> None:
        self._locks = locks
        self._inbox = inbox
        self._turns = turns
        self._limits = limits
        self._conversations: dict[str, ConversationWork] = {}
        self._recent: OrderedDict[tuple[str, str], None] = OrderedDict()
        # the latest synchronous calls' futures: a redelivery gets the first delivery's answer
        self._answers: OrderedDict[tuple[str, str], asyncio.Future[Any]] = OrderedDict()
        self._storing: dict[str, int] = {}  # accepts whose inbox entry is being stored
        self._sweeper: asyncio.Task[None] | None = None
        self.draining = False

    @property
    def queued(self) -> int:
        """Turns accepted here and not yet run, synchronous ones included."""
        return sum(len(c.mine) + len(c.calls) for c in self._conversations.values())

    @property
    def busy(self) -> bool:
        return bool(self._conversations)

    def start(self, after: Awaitable[Any] | None = None) -> None:
        """Start sweeping the inbox for orphaned entries: first once `after` is done (say, the
        model has loaded), then every `sweep_s`."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(after))

    def _check_room(self, conversation: str) -> None:
        if self.draining:
            raise RunnerBusy("shutting down")
        # Accepts still storing their entry count too: a burst cannot overshoot either bound.
        state = self._conversations.get(conversation)
        waiting = self._storing.get(conversation, 0)
        if state is not None:
            waiting += len(state.mine) + len(state.calls)
        if waiting >= self._limits.max_queued_per_conversation:
            raise ConversationBusy("too many turns waiting in this conversation")
        if self.queued + sum(self._storing.values()) >= self._limits.max_queued:
            raise RunnerBusy("too many turns queued")

    def _remember(self, conversation: str, activity_id: str | None) -> bool:
        """Remember an accepted activity id; False if it was accepted before (a retry)."""
        if not activity_id:
            return True
        key = (conversation, activity_id)
        if key in self._recent:
            return False
        self._recent[key] = None
        if len(self._recent) > self._limits.dedupe_window:
            self._recent.popitem(last=False)
        return True

    async def accept(self, conversation: str, activity_id: str | None, body: str) -> bool:
        """Store the activity in the inbox and have its turn run; False for a repeated activity.

        Raises ConversationBusy (the conversation has its share of the queue waiting),
        RunnerBusy (no room, or draining) and StorageUnavailable (not stored).
        """
        self._check_room(conversation)
        if not self._remember(conversation, activity_id):
            return False
        self._storing[conversation] = self._storing.get(conversation, 0) + 1
        try:
            seq = await self._inbox.put(conversation, activity_id, body)
        except BaseException:
            self._recent.pop((conversation, activity_id or ""), None)  # a retry may succeed
            raise
        finally:
            self._storing[conversation] -= 1
            if not self._storing[conversation]:
                del self._storing[conversation]
        if seq is None:  # another replica accepted this activity and has not run it yet
            return False
        state = self._conversation(conversation)
        state.mine[seq] = InboxEntry(seq, conversation, activity_id or "", body)
        self._start_worker(conversation, state)
        return True

    def call(self, conversation: str, turn: Turn, *, activity_id: str | None = None) -> Any:
        """Run `turn` under the conversation's lock; its future. For a repeated id: the first
        delivery's future where it is among the last ANSWERS_KEPT (a Teams card's click
        delivered twice gets the same outcome card, the turn run once), else None.

        The future fails with TurnTimedOut past `turn_timeout_s` (the id is kept: the turn may
        have replied or acted, so a redelivery is a duplicate), or StorageUnavailable when the
        lock could not be taken (nothing ran: the id is forgotten, so a retry runs)."""
        self._check_room(conversation)
        if not self._remember(conversation, activity_id):
            return self._answers.get((conversation, activity_id or ""))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if activity_id:
            done.add_done_callback(partial(self._forget_failed, (conversation, activity_id)))
            self._answers[(conversation, activity_id)] = done
            if len(self._answers) > ANSWERS_KEPT:
                self._answers.popitem(last=False)
        state = self._conversation(conversation)
        state.calls.append((turn, done))
        self._start_worker(conversation, state)
        return done

    def _forget_failed(self, key: tuple[str, str], done: asyncio.Future[Any]) -> None:
        if not done.cancelled() and isinstance(done.exception(), StorageUnavailable):
            self._recent.pop(key, None)
            self._answers.pop(key, None)

    def _conversation(self, conversation: str) -> ConversationWork:
        return self._conversations.setdefault(conversation, ConversationWork())

    def _start_worker(self, conversation: str, state: ConversationWork) -> None:
        if state.worker is None:
            state.worker = asyncio.create_task(self._work(conversation, state))

    # --- the worker ----------------------------------------------------------------------

    async def _work(self, conversation: str, state: ConversationWork) -> None:
        limits = self._limits
        try:
            while state.calls or state.mine or state.adopted:
                if self.draining and not (state.calls or state.mine):
                    break  # adopted work stays in the inbox for the other replicas
                try:
                    async with asyncio.timeout(limits.turn_timeout_s + limits.lock_wait_s + 5):
                        async with self._locks.hold(
                            conversation,
                            ttl_s=limits.turn_timeout_s + 5,
                            wait_s=limits.lock_wait_s,
                        ):
                            ran = await self._next_turn(conversation, state)
                    state.adopted = state.adopted and ran
                except LockTimeout:
                    logger.warning("conversation locked elsewhere conversation=%s", conversation)
                    state.adopted = False  # whoever holds the lock runs what waits
                    await self._tell_waiting_users(state)
                except StorageUnavailable as error:
                    logger.warning("store unreachable; retrying conversation=%s", conversation)
                    state.adopted = False
                    while state.calls:  # their callers answer 503 now rather than time out
                        _, done = state.calls.popleft()
                        if not done.done():
                            done.set_exception(error)
                    await asyncio.sleep(1.0)
                    if self.draining:
                        break
        finally:
            for _, done in state.calls:  # only when cancelled: no caller left waiting
                done.cancel()
            state.calls.clear()
            state.worker = None
            if state.calls or state.mine:  # left for the other replicas (draining or cancelled)
                logger.info(
                    "left %d turns in the inbox conversation=%s", len(state.mine), conversation
                )
            self._conversations.pop(conversation, None)

    async def _next_turn(self, conversation: str, state: ConversationWork) -> bool:
        """Holding the lock: run one synchronous call, or the oldest entry. False if none."""
        if state.calls:
            turn, done = state.calls.popleft()
            await self._run_call(turn, done)
            return True
        entry = await self._inbox.first(conversation)
        for seq in [seq for seq in state.mine if entry is None or seq < entry.seq]:
            del state.mine[seq]  # run by another replica
        if entry is None:
            return False
        try:
            async with asyncio.timeout(self._limits.turn_timeout_s):
                await self._turns.run(entry)
        except asyncio.CancelledError:
            if _being_cancelled():
                raise  # shutdown: a turn cut off mid-way stays in the inbox for a replica
            # A CancelledError nobody asked this worker for (one that escaped from a task the
            # turn awaited): the turn failed, like any other error of its own.
            logger.error(
                "turn ended by a stray cancellation conversation=%s seq=%d", conversation, entry.seq
            )
        except Exception:
            logger.exception("turn failed conversation=%s seq=%d", conversation, entry.seq)
        # Removed whenever the turn ended by itself, failed or not: it has replied or apologised
        # (or broke before it could), and a message that breaks its turn must not come back
        # forever.
        state.mine.pop(entry.seq, None)
        state.told_to_wait.discard(entry.seq)
        try:
            await self._inbox.remove(entry)
        except StorageUnavailable:
            logger.warning("could not remove a run turn; it may run again seq=%d", entry.seq)
        return True

    async def _run_call(self, turn: Turn, done: asyncio.Future[Any]) -> None:
        deadline = asyncio.timeout(self._limits.turn_timeout_s)
        try:
            async with deadline:
                result = await turn()
        except asyncio.CancelledError:
            done.cancel()
            raise
        except Exception as error:
            failure = error
            if deadline.expired():  # ours, not a TimeoutError from inside the turn
                limit = self._limits.turn_timeout_s
                failure = TurnTimedOut(f"the turn took longer than {limit:g} s")
            if not done.done():
                done.set_exception(failure)
        else:
            if not done.done():
                done.set_result(result)

    async def _tell_waiting_users(self, state: ConversationWork) -> None:
        for seq, entry in list(state.mine.items()):
            if seq not in state.told_to_wait:
                state.told_to_wait.add(seq)
                try:
                    await self._turns.say_one_moment(entry)
                except Exception:
                    logger.warning("could not say one moment conversation=%s", entry.conversation)

    # --- orphans ---------------------------------------------------------------------------

    async def _sweep_forever(self, after: Awaitable[Any] | None) -> None:
        if after is not None:
            with contextlib.suppress(Exception):  # a model that failed to load: turns apologise
                await after
        while True:
            with contextlib.suppress(StorageUnavailable):
                await self.sweep()
            await asyncio.sleep(self._limits.sweep_s)

    async def sweep(self) -> list[str]:
        """Take up conversations whose entries have waited too long; the ones taken up."""
        if self.draining:
            return []
        found = await self._inbox.waiting_since(self._limits.orphaned_after_s)
        adopted = [c for c in found if c not in self._conversations]
        for conversation in adopted:
            logger.info("taking up waiting turns conversation=%s", conversation)
            state = self._conversation(conversation)
            state.adopted = True
            self._start_worker(conversation, state)
        return adopted

    # --- shutting down -------------------------------------------------------------------

    async def drain(self, timeout_s: float) -> bool:
        """Refuse new turns and wait up to `timeout_s` for the ones accepted here. True if all
        finished; what is left stays in the inbox for the other replicas (or the next start)."""
        self.draining = True
        deadline = time.monotonic() + timeout_s
        while (workers := self._workers()) and time.monotonic() < deadline:
            await asyncio.wait(workers, timeout=deadline - time.monotonic())
        return not self._workers()

    def _workers(self) -> set[asyncio.Task[None]]:
        return {c.worker for c in self._conversations.values() if c.worker is not None}

    async def cancel_all(self) -> None:
        workers = self._workers()
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def close(self) -> None:
        """Stop sweeping, cancel what is left and release the lock store and the inbox."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self.cancel_all()
        await self._locks.close()
        await self._inbox.close()


def _being_cancelled() -> bool:
    """True while the running task has a cancellation request pending (its own `cancel()`, not a
    CancelledError raised from something it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
