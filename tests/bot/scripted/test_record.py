"""`botloom chat --record`: the recorded conversation replays green with `botloom test`."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from bot.cli import main
from bot.scripted.command import run_tests
from bot.scripted.record import recorded_chat
from bot.scripted.replies import read_replies
from bot.settings import Settings
from models import ChatMessage
from models.fake import FakeChatModel


def test_a_recorded_chat_replays_green(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n/feedback\nGreat\nnice\nyes\n/quit\n"))
    assert main(["chat", "--record", "recorded/session.transcript"]) == 0
    out = capsys.readouterr().out
    assert "Recorded 22 activities to recorded/session.transcript." in out
    assert "Replay: botloom test recorded/session.transcript" in out

    stored = json.loads(Path("recorded/session.transcript").read_text(encoding="utf-8"))
    assert [(a["type"], a["from"]["role"]) for a in stored[:4]] == [
        ("conversationUpdate", "user"),
        ("message", "bot"),
        ("message", "user"),
        ("typing", "bot"),
    ]
    assert stored[4]["text"] == "fake: hello"
    assert all(a["timestamp"] for a in stored)
    assert read_replies(Path("recorded/session.replies")) == ["fake: hello"]

    assert main(["test", "recorded/session.transcript"]) == 0
    assert "PASSED recorded/session.transcript" in capsys.readouterr().out


def france(messages: Sequence[ChatMessage]) -> str:
    return " Paris is the capital of France.\nAnything else?"  # a model's reply varies; this one


async def test_a_real_models_replies_replay_with_model_replies(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(storage="memory://")
    transcript = Path("france.transcript")
    typed = io.StringIO("What is the capital of France?\n")
    status = await recorded_chat(
        settings,
        transcript,
        model=FakeChatModel(reply=france),
        input_stream=typed,
        output=io.StringIO(),
    )
    assert status == 0
    assert read_replies(Path("france.replies")) == [france([])]

    assert await run_tests(settings, [transcript], model="fake") == 1, "the fake answers otherwise"
    assert await run_tests(settings, [transcript], model="replies") == 0
    assert "1 passed" in capsys.readouterr().out


def test_recording_where_nothing_can_be_written_fails_early(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("a-file").write_text("", encoding="utf-8")
    recording = recorded_chat(
        Settings(storage="memory://"),
        Path("a-file/session.transcript"),
        model=FakeChatModel(),
        input_stream=io.StringIO("hello\n"),
    )
    assert asyncio.run(recording) == 2
    assert "cannot record to a-file/session.transcript" in capsys.readouterr().err
