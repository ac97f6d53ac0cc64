"""Approvals: a write runs only after the user who asked approves it, exactly once however often
the button is pressed or the click delivered (here, and across two processes sharing
PostgreSQL); a rejected or expired call never runs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from bot.storage import create_backend
from bot.tools.cards import CARD_TYPE, DATA_KEY
from bot.tools.clicks import ApprovalClicks
from dialogs.tools.api import ToolCall
from tests.services import namespace_on
from tests.tools.support import lines, make_runner, stdio_config, turn
from tests.tools.test_servers import wait_up

ROOT = Path(__file__).resolve().parents[2]


async def ask(runner, context):
    note = next(t for t in runner.tools() if t.name == "note")
    return await runner.run(context, ToolCall(note, {"text": "hello"}))


async def started(tmp_path: Path, **options):
    runner = make_runner([stdio_config(tmp_path / "notes")], tmp_path / "audit.jsonl", **options)
    runner.servers.start()
    await wait_up(runner, "test")
    return runner


async def test_a_write_waits_for_approval_and_the_card_names_it(tmp_path: Path) -> None:
    runner = await started(tmp_path)
    try:
        context = turn("note hello", channel="webchat")
        outcome = await ask(runner, context)
        assert outcome.status == "pending" and lines(tmp_path / "notes") == []
        [card_activity] = context.adapter.activity_buffer
        card = card_activity.attachments[0]
        assert card.content_type == CARD_TYPE
        actions = card.content["actions"]
        assert [a["type"] for a in actions] == ["Action.Submit", "Action.Submit"]
        assert "hello" in json.dumps(card.content["body"])
        teams = turn("note hello", channel="msteams")
        await ask(runner, teams)
        teams_card = teams.adapter.activity_buffer[0].attachments[0].content
        assert {a["type"] for a in teams_card["actions"]} == {"Action.Execute"}
    finally:
        await runner.servers.close()


async def test_double_press_and_redelivered_click_run_it_once(tmp_path: Path) -> None:
    runner = await started(tmp_path)
    clicks = ApprovalClicks(runner)
    try:
        pending = await ask(runner, turn())
        press = {DATA_KEY: pending.approval_id, "decision": "approve"}
        contexts = [turn(value=press) for _ in range(3)]
        await asyncio.gather(*(clicks.on_message(c) for c in contexts))  # a double press
        await clicks.on_message(turn(value=press))  # the same click delivered again, later
        assert lines(tmp_path / "notes") == ["hello"]
        replies = [c.adapter.activity_buffer[0].text for c in contexts]
        assert sum(r.startswith("Done.") for r in replies) == 1
        assert sum("already decided" in r for r in replies) == 2
        audit = [json.loads(x) for x in lines(tmp_path / "audit.jsonl")]
        assert [(e["tool"], e["approval"], e["outcome"]) for e in audit] == [
            ("note", "approved", "ok")
        ]
    finally:
        await runner.servers.close()


async def test_teams_invoke_replaces_the_card_with_the_outcome(tmp_path: Path) -> None:
    runner = await started(tmp_path)
    clicks = ApprovalClicks(runner)
    try:
        pending = await ask(runner, turn(channel="msteams"))
        value = {
            "action": {
                "type": "Action.Execute",
                "verb": "botloom.tool.decide",
                "data": {DATA_KEY: pending.approval_id, "decision": "approve"},
            }
        }
        invoke = turn(channel="msteams", kind="invoke", name="adaptiveCard/action", value=value)
        answered = await clicks.on_invoke(invoke)
        assert answered.status == 200 and answered.body["type"] == CARD_TYPE
        assert "noted: hello" in json.dumps(answered.body["value"])
        again = await clicks.on_invoke(invoke)  # Teams retries the invoke
        assert "already decided" in json.dumps(again.body["value"])
        assert lines(tmp_path / "notes") == ["hello"]
    finally:
        await runner.servers.close()


async def test_only_the_user_who_asked_may_approve(tmp_path: Path) -> None:
    runner = await started(tmp_path)
    try:
        pending = await ask(runner, turn(user="alice", conversation="group"))
        result, _, _ = await runner.decide(pending.approval_id, "emulator/from/bob", True)
        assert result == "not_yours" and lines(tmp_path / "notes") == []
        result, _, outcome = await runner.decide(pending.approval_id, "emulator/from/alice", True)
        assert result == "run" and outcome.ok and lines(tmp_path / "notes") == ["hello"]
    finally:
        await runner.servers.close()


async def test_a_rejected_call_never_runs(tmp_path: Path) -> None:
    runner = await started(tmp_path)
    try:
        pending = await ask(runner, turn())
        user = "emulator/from/u1"
        assert (await runner.decide(pending.approval_id, user, False))[0] == "rejected"
        assert (await runner.decide(pending.approval_id, user, True))[0] == "done"
        assert lines(tmp_path / "notes") == []
        [entry] = [json.loads(x) for x in lines(tmp_path / "audit.jsonl")]
        assert entry["approval"] == "rejected" and entry["outcome"] == "not run"
    finally:
        await runner.servers.close()


async def test_an_expired_approval_never_runs(tmp_path: Path) -> None:
    runner = await started(tmp_path, expiry_s=0.0)
    try:
        pending = await ask(runner, turn())
        result, _, _ = await runner.decide(pending.approval_id, "emulator/from/u1", True)
        assert result == "expired" and lines(tmp_path / "notes") == []
    finally:
        await runner.servers.close()


async def test_typed_yes_answers_the_terminal_question(tmp_path: Path) -> None:
    runner = await started(tmp_path)
    try:
        context = turn(channel="console")
        await ask(runner, context)
        assert "(y/n" in context.adapter.activity_buffer[0].text
        assert (
            await runner.answer_approval(turn("y", user="someone-else", channel="console"), True)
            is None
        )
        outcome = await runner.answer_approval(turn("y", channel="console"), True)
        assert outcome.ok and lines(tmp_path / "notes") == ["hello"]
    finally:
        await runner.servers.close()


CLAIM = """
import asyncio, sys
from bot.storage import create_backend
from tests.tools.support import make_runner, stdio_config
from tests.tools.test_servers import wait_up
from pathlib import Path

async def main(url, namespace, notes, approval_id):
    backend = create_backend(url, namespace=namespace)
    await backend.open()
    runner = make_runner([stdio_config(Path(notes))], Path(notes + ".audit"), backend.storage)
    runner.servers.start()
    await wait_up(runner, "test")
    result, _, _ = await runner.decide(approval_id, "emulator/from/u1", True)
    print(result)
    await runner.servers.close()
    await backend.storage.close()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_approval_across_two_processes_sharing_postgresql(tmp_path: Path) -> None:
    async with namespace_on("postgresql") as (url, namespace):
        backend = create_backend(url, namespace=namespace)
        await backend.open()
        runner = make_runner(
            [stdio_config(tmp_path / "notes")], tmp_path / "a.jsonl", backend.storage
        )
        runner.servers.start()
        try:
            await wait_up(runner, "test")
            pending = await ask(runner, turn())
        finally:
            await runner.servers.close()
            await backend.storage.close()
        # two other bot processes take the same click at once
        processes = [
            subprocess.Popen(  # noqa: ASYNC220 (waited for in threads below)
                [
                    sys.executable,
                    "-c",
                    CLAIM,
                    url,
                    namespace,
                    str(tmp_path / "notes"),
                    pending.approval_id,
                ],
                cwd=ROOT,
                env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = await asyncio.gather(
            *(asyncio.to_thread(p.communicate, timeout=120) for p in processes)
        )
        results = sorted(out.strip() for out, _ in outputs)
        assert results == ["done", "run"]
        assert lines(tmp_path / "notes") == ["hello"]
