"""Scripts with tools, against stand-in bots: [Press=…] sends what the channel sends for the
button, [InvokeResponse=…] states the answer to an invoke, [ToolCalls=…] compares the audit log
since the previous check; and the mcp= file as a script runs it."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from botbuilder.core import InvokeResponse, MessageFactory, TurnContext
from botbuilder.schema import Activity, ActivityTypes, Attachment

from bot.scripted.chatdown import load_chat
from bot.scripted.errors import ScriptFailure
from bot.scripted.runner import Replay
from bot.scripted.tools import ToolCalls, script_config, with_tools
from bot.settings import Settings
from bot.tools.audit import AuditLog
from bot.tools.cards import CARD_TYPE

MCP = {"mcpServers": {"shop": {"command": "python", "args": ["servers.py", "shop"]}}}


def card(action: str) -> Attachment:
    def button(title: str) -> dict:
        out = {"type": action, "title": title, "data": {"decision": title.lower()}}
        return {**out, "verb": "decide"} if action == "Action.Execute" else out

    body = {"type": "AdaptiveCard", "body": [], "actions": [button("Approve"), button("Reject")]}
    return Attachment(content_type=CARD_TYPE, content=body)


class CardBot:
    """Sends a card for 'card', answers other messages and presses with what it received, and
    audits a call to shop/<decision> for each press (shop/reject as not run)."""

    def __init__(self, audit: Path) -> None:
        self.audit = AuditLog(audit)

    async def __call__(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if activity.text == "card":
            action = "Action.Execute" if activity.channel_id == "msteams" else "Action.Submit"
            await turn_context.send_activity(MessageFactory.attachment(card(action)))
            return
        value = activity.value or {}
        if activity.type == ActivityTypes.invoke:
            pressed = {"name": activity.name, **value}
            body = {"statusCode": 200, "type": "text", "value": json.dumps(pressed)}
            response = InvokeResponse(status=200, body=body)
            await turn_context.send_activity(Activity(type="invokeResponse", value=response))
        else:
            await turn_context.send_activity(f"{activity.text or 'pressed'} {json.dumps(value)}")
        decision = (value.get("action", {}).get("data") or value).get("decision")
        if decision is None:
            return
        self.audit.record(
            conversation="c",
            user="u",
            server="shop",
            tool=decision,
            arguments={},
            approval="approved",
            outcome="not run" if decision == "reject" else "ok",
            duration_ms=1.0,
        )


async def run(tmp_path: Path, text: str) -> None:
    (tmp_path / "mcp.json").write_text(json.dumps(MCP), encoding="utf-8")
    path = tmp_path / "script.chat"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    audit = tmp_path / "audit.jsonl"
    await Replay(load_chat(path), CardBot(audit), calls=ToolCalls(audit)).run()


async def failure_of(tmp_path: Path, text: str) -> ScriptFailure:
    """The failure the script `text` ends with (the test fails if it passes)."""
    with pytest.raises(ScriptFailure) as caught:
        await run(tmp_path, text)
    return caught.value


async def test_a_press_sends_the_buttons_data_and_tool_calls_are_counted_once(
    tmp_path: Path,
) -> None:
    await run(
        tmp_path,
        """
        channelId=emulator
        mcp=mcp.json
        user: card
        bot: *
        bot: [ToolCalls=]
        user: [Press=Approve]
        bot: pressed {"decision": "approve"}
        user: [Press=Reject]
        bot: pressed {"decision": "reject"}
        user: [Press=Approve]
        bot: pressed {"decision": "approve"}
        bot: [ToolCalls=shop/approve, shop/approve]
        [ToolCalls=]
        """,
    )


async def test_in_teams_a_press_is_the_invoke_with_the_verb_and_data(tmp_path: Path) -> None:
    pressed = {
        "name": "adaptiveCard/action",
        "action": {"type": "Action.Execute", "verb": "decide", "data": {"decision": "approve"}},
    }
    await run(
        tmp_path,
        f"""
        channelId=msteams
        mcp=mcp.json
        user: card
        bot: *
        user: [Press=Approve]
        bot: [InvokeResponse=200] {json.dumps(pressed)}
        bot: [ToolCalls=shop/approve]
        """,
    )


async def test_a_wrong_invoke_response_fails_with_both_sides(tmp_path: Path) -> None:
    failure = await failure_of(
        tmp_path,
        """
        channelId=msteams
        mcp=mcp.json
        user: card
        bot: *
        user: [Press=Reject]
        bot: [InvokeResponse=403]
        """,
    )
    assert failure.line == 6 and failure.expected == "[InvokeResponse=403]"
    assert failure.reason == "the bot's answer to the invoke does not match the script (status)"
    assert failure.actual.startswith('[InvokeResponse=200] {"name": "adaptiveCard/action"')


async def test_tool_calls_that_differ_fail_with_expected_and_actual(tmp_path: Path) -> None:
    failure = await failure_of(
        tmp_path,
        """
        channelId=emulator
        mcp=mcp.json
        user: card
        bot: *
        user: [Press=Approve]
        bot: pressed {"decision": "approve"}
        bot: [ToolCalls=shop/lookup_order, shop/approve]
        """,
    )
    assert (failure.line, failure.reason) == (7, "the tools that ran do not match the script")
    assert failure.expected == "[ToolCalls=shop/lookup_order, shop/approve]"
    assert failure.actual == "[ToolCalls=shop/approve]"
    assert "    user: [Press=Approve]" in str(failure)


@pytest.mark.parametrize(
    ("text", "actual"),
    [
        ("user: hello\nbot: hello {}\nuser: [Press=Approve]\n", "no Adaptive Card"),
        ("user: card\nbot: *\nuser: [Press=Maybe]\n", "its buttons: Approve, Reject"),
    ],
)
async def test_a_press_without_such_a_button_fails_naming_the_line(
    tmp_path: Path, text: str, actual: str
) -> None:
    failure = await failure_of(tmp_path, text)
    title = text.rsplit("=", 1)[1].split("]")[0]
    line = text.count("\n")
    assert failure.line == line
    assert failure.reason == f"no card with a button '{title}' before line {line}"
    assert failure.actual == actual


def test_the_mcp_file_runs_with_this_python_from_its_own_folder(tmp_path: Path) -> None:
    config = {
        "mcpServers": {
            "shop": {"command": "python", "args": ["servers.py"]},
            "other": {"command": "node", "args": ["x.js"], "cwd": "sub"},
            "web": {"url": "https://tools.test/mcp"},
        }
    }
    (tmp_path / "mcp.json").write_text(json.dumps(config), encoding="utf-8")
    servers = script_config(tmp_path / "mcp.json")["mcpServers"]
    assert servers["shop"] == {
        "command": sys.executable,
        "args": ["servers.py"],
        "cwd": str(tmp_path.resolve()),
    }
    assert (servers["other"]["command"], servers["other"]["cwd"]) == (
        "node",
        str((tmp_path / "sub").resolve()),
    )
    assert servers["web"] == {"url": "https://tools.test/mcp"}
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    settings, audit = with_tools(Settings(), tmp_path / "mcp.json", run_folder)
    assert audit == run_folder / "tools-audit.jsonl" and settings.tools_audit == str(audit)
    written = json.loads(Path(settings.mcp_config).read_text(encoding="utf-8"))
    assert written["mcpServers"]["shop"]["command"] == sys.executable
