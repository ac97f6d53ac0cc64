"""The audit log: secrets masked at any depth; an audit file that cannot be written never stops
an approved call from being settled (it runs once, its approval ends), and the bot refuses to
start with one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from botbuilder.core import ConversationState, MemoryStorage

from bot.redaction import MASK
from bot.settings import Settings, SettingsError
from bot.tools.audit import AuditLog, mask_arguments
from bot.tools.setup import build_tools
from tests.tools.support import lines, make_runner, stdio_config, turn
from tests.tools.test_approvals import ask
from tests.tools.test_servers import wait_up


def test_secrets_are_masked_at_any_depth() -> None:
    arguments = {
        "order_id": "A-1",
        "shipping": "standard",  # "pin" only as a whole part of a name
        "api_key": "k-123",
        "request": {
            "headers": {"Authorization": "Basic dXNlcjpwYXNz", "Accept": "text/plain"},
            "auth": {"user": "ann", "password": "hunter2", "PIN": "1234"},
            "items": [{"token": "t-1", "count": 2}, "Bearer abc.def-ghi", 3],
            "clientSecret": "s",
            "passphrase": "open sesame",
        },
        "note": "sent with Authorization: Bearer xyz\nthanks",
        "url": "https://example.com/x?sig=abcdef&page=2",
    }
    masked = mask_arguments(arguments)
    assert masked == {
        "order_id": "A-1",
        "shipping": "standard",
        "api_key": MASK,
        "request": {
            "headers": {"Authorization": MASK, "Accept": "text/plain"},
            "auth": MASK,
            "items": [{"token": MASK, "count": 2}, f"Bearer {MASK}", 3],
            "clientSecret": MASK,
            "passphrase": MASK,
        },
        "note": f"sent with Authorization: {MASK}\nthanks",
        "url": f"https://example.com/x?sig={MASK}&page=2",
    }
    assert arguments["request"]["auth"]["password"] == "hunter2"  # the call's own: untouched
    nested = mask_arguments({"outer": {"user": "ann", "pin": "1234", "wallet_pin": "99"}})
    assert nested == {"outer": {"user": "ann", "pin": MASK, "wallet_pin": MASK}}


def unwritable(tmp_path: Path) -> Path:
    """An audit path under a regular file: not writable, even for root."""
    (tmp_path / "a-file").write_text("")
    return tmp_path / "a-file" / "audit.jsonl"


def test_a_failed_audit_write_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit = AuditLog(unwritable(tmp_path))
    with caplog.at_level(logging.ERROR, logger="bot.tools.audit"):
        entry = audit.record(
            conversation="c1",
            user="u1",
            server="s",
            tool="t",
            arguments={"token": "x"},
            approval="approved",
            outcome="ok",
            duration_ms=1.0,
        )
    assert entry["arguments"] == {"token": MASK}
    [logged] = caplog.records
    assert logged.levelname == "ERROR" and "could not append" in logged.getMessage()


async def test_an_unwritable_audit_still_settles_the_approved_call_once(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    runner = make_runner([stdio_config(notes)], unwritable(tmp_path))
    runner.servers.start()
    try:
        await wait_up(runner, "test")
        pending = await ask(runner, turn())
        result, _, outcome = await runner.decide(pending.approval_id, "emulator/from/u1", True)
        assert result == "run" and outcome is not None and outcome.ok
        stored = await runner.approvals.get(pending.approval_id)
        assert stored is not None and stored["state"] == "done"  # not left "running"
        again, _, _ = await runner.decide(pending.approval_id, "emulator/from/u1", True)
        assert again == "done"
        assert await runner.answer_approval(turn("y"), True) is None  # nothing waits any more
        assert lines(notes) == ["hello"]  # ran exactly once
    finally:
        await runner.servers.close()


def tools_settings(tmp_path: Path, audit: Path) -> Settings:
    (tmp_path / "mcp.json").write_text(json.dumps({"mcpServers": {}}))
    return Settings(mcp_config=str(tmp_path / "mcp.json"), tools_audit=str(audit))


def test_the_bot_refuses_to_start_with_an_unwritable_audit(tmp_path: Path) -> None:
    settings = tools_settings(tmp_path, unwritable(tmp_path))
    state = ConversationState(MemoryStorage())
    with pytest.raises(SettingsError, match=r"BOTLOOM_TOOLS_AUDIT=.*cannot be written"):
        build_tools(settings, MemoryStorage(), state, embedding_model=object())  # type: ignore[arg-type]


def test_a_writable_audit_is_created_at_start(tmp_path: Path) -> None:
    audit = tmp_path / "logs" / "audit.jsonl"
    state = ConversationState(MemoryStorage())
    tools = build_tools(
        tools_settings(tmp_path, audit),
        MemoryStorage(),
        state,
        embedding_model=object(),  # type: ignore[arg-type]
        arguments=object(),
    )
    assert tools is not None and audit.is_file()
