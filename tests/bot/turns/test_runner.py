"""TurnRunner: turns from the inbox, in order per conversation, across runners sharing a store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from botbuilder.core import BotAdapter, TurnContext
from botbuilder.schema import (
    Activity,
    ChannelAccount,
    ConversationAccount,
    ConversationReference,
    ResourceResponse,
)

from bot.channels.streaming import StreamPolicy
from bot.channels.streaming_reply import INTERRUPTED_NOTE, StreamingReply
from bot.storage import InboxEntry, backend_of
from bot.storage.memory import LocalLocks, MemoryInbox
from bot.storage.sqlite import SqliteStorage
from bot.turns.runner import ConversationBusy, RunnerBusy, RunnerLimits, TurnRunner
from dialogs.answer.apologies import apology_for
from dialogs.answer.model_reply import final_text
from dialogs.answer.reply_ending import end_on_sentence
from models import ChatMessage, GenerationParams, ModelTimeout
from models.fake import FakeChatModel
from models.guard import GuardedChatModel, GuardLimits


class RecordingTurns:
    """Runs an entry by recording it; an entry whose body names a gate waits for it."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.events: list[str] = []
        self.told_to_wait: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self._delay_s = delay_s

    async def run(self, entry: InboxEntry) -> None:
        self.events.append(f"start {entry.body}")
        if entry.body in self.gates:
            await self.gates[entry.body].wait()
        await asyncio.sleep(self._delay_s)
        self.events.append(f"end {entry.body}")

    async def say_one_moment(self, entry: InboxEntry) -> None:
        self.told_to_wait.append(entry.body)

    def ran(self) -> list[str]:
        return [e.removeprefix("end ") for e in self.events if e.startswith("end ")]


def local_runner(turns: RecordingTurns, **limits: float) -> TurnRunner:
    return TurnRunner(LocalLocks(), MemoryInbox(), turns, RunnerLimits(**limits))  # type: ignore[arg-type]


async def idle(*runners: TurnRunner, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while any(r.busy for r in runners):
        assert time.monotonic() < deadline, "turns still running"
        await asyncio.sleep(0.01)


async def test_one_conversation_runs_in_order_and_others_in_parallel() -> None:
    turns = RecordingTurns()
    runner = local_runner(turns)
    turns.gates["a1"] = gate = asyncio.Event()
    for conversation, body in [("a", "a1"), ("a", "a2"), ("b", "b1")]:
        assert await runner.accept(conversation, body, body)
    await asyncio.sleep(0.05)
    assert turns.events == ["start a1", "start b1", "end b1"], "a2 ran before a1 ended"
    gate.set()
    await idle(runner)
    assert turns.ran() == ["b1", "a1", "a2"]
    assert not runner.busy and runner.queued == 0
    await runner.close()


async def test_bounded_queue_and_duplicates() -> None:
    turns = RecordingTurns()
    runner = local_runner(turns, max_queued=2)
    turns.gates["x"] = gate = asyncio.Event()
    assert await runner.accept("a", "x", "x") is True
    assert await runner.accept("a", "x", "x") is False, "a retry queued twice"
    assert await runner.accept("b", "y", "y") is True
    with pytest.raises(RunnerBusy):
        await runner.accept("c", "z", "z")
    await asyncio.sleep(0.05)
    gate.set()
    await idle(runner)
    assert turns.ran() == ["y", "x"]
    await runner.close()


async def test_a_turn_that_times_out_is_not_run_again_and_frees_the_conversation() -> None:
    turns = RecordingTurns()
    runner = local_runner(turns, turn_timeout_s=0.05)
    turns.gates["stuck"] = asyncio.Event()
    await runner.accept("a", "1", "stuck")
    await runner.accept("a", "2", "after")
    await idle(runner)
    assert turns.events == ["start stuck", "start after", "end after"]
    await runner.close()


async def test_calls_answer_with_their_result_under_the_conversation_lock() -> None:
    turns = RecordingTurns()
    runner = local_runner(turns)
    turns.gates["m1"] = gate = asyncio.Event()
    await runner.accept("a", "m1", "m1")
    await asyncio.sleep(0.05)  # m1's turn is running

    async def invoke() -> str:
        turns.events.append("invoke")
        return "invoked"

    done = runner.call("a", invoke, activity_id="i1")
    assert runner.call("a", invoke, activity_id="i1") is done, "a redelivery: the same answer"
    await asyncio.sleep(0.05)
    assert "invoke" not in turns.events, "ran beside a turn of its conversation"
    gate.set()
    assert await done == "invoked"
    assert turns.events.count("invoke") == 1
    await runner.close()


async def test_drain_refuses_new_turns_and_finishes_accepted_ones() -> None:
    turns = RecordingTurns(delay_s=0.05)
    runner = local_runner(turns)
    await runner.accept("a", "1", "before")
    assert await runner.drain(2.0) is True
    assert turns.ran() == ["before"]
    with pytest.raises(RunnerBusy):
        await runner.accept("a", "2", "after")
    await runner.close()


class StrayCancellationTurns(RecordingTurns):
    """A turn whose body names "stray" ends with a CancelledError from a task it awaited (not a
    cancellation of the turn itself), as a cancelled helper task's result re-raises it."""

    async def run(self, entry: InboxEntry) -> None:
        if entry.body != "stray":
            return await super().run(entry)
        self.events.append(f"start {entry.body}")
        helper = asyncio.create_task(asyncio.sleep(10))
        await asyncio.sleep(0)
        helper.cancel()
        await asyncio.wait({helper})
        helper.result()  # raises CancelledError


async def test_a_turn_that_ends_in_a_stray_cancellation_is_done_and_not_run_again() -> None:
    turns = StrayCancellationTurns()
    inbox = MemoryInbox()
    runner = TurnRunner(
        LocalLocks(), inbox, turns, RunnerLimits(orphaned_after_s=0.1, sweep_s=0.05)
    )
    runner.start()
    await runner.accept("a", "1", "stray")
    await runner.accept("a", "2", "after")
    await idle(runner)
    await asyncio.sleep(0.3)  # the sweep would have taken a left entry up again by now
    await idle(runner)
    assert turns.events == ["start stray", "start after", "end after"]
    assert await inbox.first("a") is None
    await runner.close()


async def test_a_turn_cut_off_by_shutdown_stays_in_the_inbox() -> None:
    turns = RecordingTurns()
    inbox = MemoryInbox()
    runner = TurnRunner(LocalLocks(), inbox, turns, RunnerLimits())
    turns.gates["long"] = asyncio.Event()
    await runner.accept("a", "1", "long")
    await asyncio.sleep(0.05)
    await runner.cancel_all()
    entry = await inbox.first("a")
    assert entry is not None and entry.body == "long"
    await runner.close()


class SendingAdapter(BotAdapter):
    """Records the texts a turn sends."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    async def send_activities(
        self, context: TurnContext, activities: list[Activity]
    ) -> list[ResourceResponse]:
        self.texts.extend(activity.text or "" for activity in activities)
        return [ResourceResponse(id=f"id-{len(self.texts)}") for _ in activities]

    async def update_activity(self, context: TurnContext, activity: Activity) -> ResourceResponse:
        raise NotImplementedError

    async def delete_activity(self, context: TurnContext, reference: ConversationReference) -> None:
        raise NotImplementedError


class StreamedModelTurns(RecordingTurns):
    """Runs an entry as the bot answers a message: the model's reply, ending on a sentence
    (its tokens counted in a worker thread between pieces, `count_s` each time), is streamed
    into the turn, and a model failure ends the reply with its apology."""

    def __init__(self, model: GuardedChatModel, count_s: float) -> None:
        super().__init__()
        self.adapter = SendingAdapter()
        self._model = model
        self._count_s = count_s

    async def run(self, entry: InboxEntry) -> None:
        self.events.append(f"start {entry.body}")
        activity = Activity(
            type="message",
            channel_id="directline",
            conversation=ConversationAccount(id=entry.conversation),
            from_property=ChannelAccount(id="u1"),
            recipient=ChannelAccount(id="b1"),
            text=entry.body,
        )

        def count(text: str) -> int:
            time.sleep(self._count_s)
            return len(text.split())

        def pieces() -> AsyncIterator[str]:
            prompt = [ChatMessage("user", entry.body)]
            return end_on_sentence(self._model.stream(prompt, GenerationParams()), count, cap=200)

        policy = StreamPolicy(interval_s=0.01)
        async with StreamingReply(TurnContext(self.adapter, activity), policy) as stream:
            await stream.finish(final_text(await stream.pump(pieces)))
        self.events.append(f"end {entry.body}")


async def test_a_reply_cut_off_by_the_model_deadline_is_apologised_for_once_and_not_run_again() -> (
    None
):
    model = FakeChatModel(reply=lambda _: "word " * 100)
    turns = StreamedModelTurns(GuardedChatModel(model, GuardLimits(deadline_s=0.3)), count_s=0.1)
    inbox = MemoryInbox()
    runner = TurnRunner(
        LocalLocks(), inbox, turns, RunnerLimits(orphaned_after_s=0.1, sweep_s=0.05)
    )
    runner.start()
    await runner.accept("a", "1", "tell me a long story")
    await idle(runner)
    await asyncio.sleep(0.5)  # the sweep would have taken the entry up again by now
    await idle(runner)
    assert await inbox.first("a") is None
    assert [e for e in turns.events if e.startswith("start")] == ["start tell me a long story"]
    apology = apology_for(ModelTimeout())
    assert len([text for text in turns.adapter.texts if apology in text]) == 1
    assert not [text for text in turns.adapter.texts if INTERRUPTED_NOTE in text]
    await runner.close()


# --- runners sharing a store (as replicas do); SQLite stands in for the shared database --------


class Replica:
    def __init__(self, path: Path, turns: RecordingTurns, **limits: float) -> None:
        self.storage = SqliteStorage(path)
        backend = backend_of(self.storage)
        self.runner = TurnRunner(
            backend.locks(),
            backend.inbox(),
            turns,  # type: ignore[arg-type]
            RunnerLimits(**limits),
        )

    async def close(self) -> None:
        await self.runner.close()
        await self.storage.close()


async def test_replicas_run_a_conversation_in_acknowledgement_order_exactly_once(
    tmp_path: Path,
) -> None:
    turns = RecordingTurns(delay_s=0.01)  # one record for both replicas: the user's view
    replicas = [Replica(tmp_path / "state.db", turns) for _ in range(3)]
    sent = []
    for n in range(12):  # each message reaches another replica, the next right after the 202
        sent.append(f"m{n}")
        assert await replicas[n % 3].runner.accept("a", sent[-1], sent[-1])
    await idle(*(r.runner for r in replicas))
    assert turns.ran() == sent
    assert [e for e in turns.events if e.startswith("start")] == [f"start {m}" for m in sent]
    for replica in replicas:
        await replica.close()


async def test_entries_left_by_a_stopped_replica_are_taken_up_in_order(tmp_path: Path) -> None:
    turns = RecordingTurns()
    gone = Replica(tmp_path / "state.db", turns)
    turns.gates["m0"] = asyncio.Event()  # never set: m0's turn is running when the replica stops
    for n in range(3):
        await gone.runner.accept("a", f"m{n}", f"m{n}")
    await asyncio.sleep(0.05)
    await gone.runner.cancel_all()  # stopped mid-turn: its acknowledged entries stay stored
    await gone.close()
    assert turns.ran() == []

    del turns.gates["m0"]
    survivor = Replica(tmp_path / "state.db", turns, orphaned_after_s=0.1, sweep_s=0.05)
    await survivor.runner.accept("a", "m3", "m3")  # a new message runs only after the old ones
    survivor.runner.start()
    await idle(survivor.runner)
    assert turns.ran() == ["m0", "m1", "m2", "m3"]
    await survivor.close()


async def test_after_a_restart_waiting_entries_run_once_the_start_signal_comes(
    tmp_path: Path,
) -> None:
    turns = RecordingTurns()
    storage = SqliteStorage(tmp_path / "state.db")
    inbox = backend_of(storage).inbox()  # as the endpoint of the process that crashed stored it
    await inbox.put("a", "m0", "acknowledged before a crash")
    await inbox.close()
    await storage.close()

    after = Replica(tmp_path / "state.db", turns, orphaned_after_s=0.0, sweep_s=0.05)
    model_loaded = asyncio.Event()
    after.runner.start(after=model_loaded.wait())
    await asyncio.sleep(0.2)
    assert turns.ran() == [], "ran before the model was loaded"
    model_loaded.set()
    await asyncio.sleep(0.1)
    await idle(after.runner)
    assert turns.ran() == ["acknowledged before a crash"]
    await after.close()


async def test_a_message_that_waits_for_another_replica_is_told_so_once_and_still_runs(
    tmp_path: Path,
) -> None:
    turns = RecordingTurns()
    holder = Replica(tmp_path / "state.db", turns)
    waiter = Replica(tmp_path / "state.db", turns, lock_wait_s=0.1)
    turns.gates["long"] = gate = asyncio.Event()
    await holder.runner.accept("a", "1", "long")
    await asyncio.sleep(0.05)
    await waiter.runner.accept("a", "2", "next")
    await asyncio.sleep(0.5)  # several lock timeouts
    assert turns.told_to_wait == ["next"]
    assert turns.ran() == []
    gate.set()
    await idle(holder.runner, waiter.runner)
    assert turns.ran() == ["long", "next"]
    assert turns.told_to_wait == ["next"]
    await holder.close()
    await waiter.close()


async def test_a_conversation_past_its_share_of_the_queue_is_refused_and_others_admitted() -> None:
    turns = RecordingTurns()
    runner = local_runner(turns, max_queued=10, max_queued_per_conversation=3)
    turns.gates["a0"] = gate = asyncio.Event()
    for n in range(3):
        assert await runner.accept("a", f"a{n}", f"a{n}")
    with pytest.raises(ConversationBusy):
        await runner.accept("a", "a3", "a3")
    with pytest.raises(ConversationBusy):
        runner.call("a", lambda: asyncio.sleep(0), activity_id="a-invoke")
    for n in range(5):
        assert await runner.accept(f"b{n}", f"b{n}", f"b{n}"), "other conversations still admitted"
    gate.set()
    await idle(runner)
    assert await runner.accept("a", "a3", "a3"), "admitted once its turns ran (and not a retry)"
    await idle(runner)
    assert sorted(turns.ran()) == sorted([f"a{n}" for n in range(4)] + [f"b{n}" for n in range(5)])
    await runner.close()


class SlowInbox(MemoryInbox):
    """Storing an entry takes a moment, as it does in a database."""

    async def put(self, conversation: str, activity_id: str | None, body: str) -> int | None:
        await asyncio.sleep(0.01)
        return await super().put(conversation, activity_id, body)


async def test_a_burst_of_one_conversation_cannot_overshoot_its_share() -> None:
    turns = RecordingTurns()
    limits = RunnerLimits(max_queued=100, max_queued_per_conversation=3)
    runner = TurnRunner(LocalLocks(), SlowInbox(), turns, limits)  # type: ignore[arg-type]
    turns.gates["m0"] = gate = asyncio.Event()
    results = await asyncio.gather(
        *(runner.accept("a", f"m{n}", f"m{n}") for n in range(10)), return_exceptions=True
    )
    assert results.count(True) == 3
    assert all(isinstance(r, ConversationBusy) for r in results if r is not True)
    gate.set()
    await idle(runner)
    assert turns.ran() == ["m0", "m1", "m2"]
    await runner.close()
