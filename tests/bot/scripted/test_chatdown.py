"""The chatdown parser: each feature of the format, and malformed scripts naming file:line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from botbuilder.schema import ActivityTypes

from bot.scripted.chatdown import load_chat
from bot.scripted.errors import ScriptError
from bot.scripted.steps import (
    ExpectInvokeResponse,
    ExpectMessage,
    ExpectToolCalls,
    ExpectTyping,
    Script,
    Send,
)

MCP = {"mcpServers": {"shop": {"command": "python", "args": ["servers.py", "shop"]}}}


def chat(tmp_path: Path, text: str, name: str = "script.chat") -> Script:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return load_chat(path)


def kinds(script: Script) -> list[str]:
    return [type(step).__name__ for step in script.steps]


def test_header_names_the_user_the_bot_and_the_channel(tmp_path: Path) -> None:
    script = chat(
        tmp_path,
        """
        user=Joe
        bot=LulaBot
        channelId=msteams

        Joe: hi
        LulaBot: hello Joe
        user: again
        bot: hello again
        """,
    )
    first, _, second, _ = script.steps
    assert isinstance(first, Send) and isinstance(second, Send)
    assert (first.activity.text, first.activity.from_property.name) == ("hi", "Joe")
    assert first.activity.recipient.name == "LulaBot"
    assert first.activity.channel_id == "msteams"
    assert second.activity.from_property.name == "Joe", "user: is the last user who spoke"
    assert [s.line for s in script.steps] == [5, 6, 7, 8]


def test_several_users_and_a_bot_line_for_one_of_them(tmp_path: Path) -> None:
    script = chat(
        tmp_path,
        """
        users=Joe,Sue
        Sue: hi
        bot->Joe: hello Joe
        bot: hello Sue
        """,
    )
    sent, to_joe, to_last = script.steps
    assert isinstance(sent, Send) and sent.activity.from_property.name == "Sue"
    assert isinstance(to_joe, ExpectMessage) and to_joe.recipient == "Joe"
    assert isinstance(to_last, ExpectMessage) and to_last.recipient is None


def test_a_turn_runs_until_the_next_one_and_keeps_inner_blank_lines(tmp_path: Path) -> None:
    script = chat(
        tmp_path,
        """
        user: first line
        second line
        bot: Here is a list:

        - one
        - two

        user: bye
        """,
    )
    sent, expected, _ = script.steps
    assert isinstance(sent, Send) and sent.activity.text == "first line\nsecond line"
    assert isinstance(expected, ExpectMessage)
    assert expected.text.written == "Here is a list:\n\n- one\n- two"


def test_typing_in_a_bot_turn_is_expected_and_in_a_user_turn_is_sent(tmp_path: Path) -> None:
    script = chat(
        tmp_path,
        """
        user: [Typing]
        user: hi
        bot: [Typing]
        Hello!
        """,
    )
    assert kinds(script) == ["Send", "Send", "ExpectTyping", "ExpectMessage"]
    assert script.steps[0].activity.type == ActivityTypes.typing  # type: ignore[union-attr]
    message = script.steps[3]
    assert isinstance(message, ExpectMessage) and message.text.written == "Hello!"
    assert message.line == 4, "the line where the text starts"


def test_text_before_typing_is_a_message_of_its_own(tmp_path: Path) -> None:
    script = chat(tmp_path, "user: hi\nbot: One moment. [Typing] Done.\n")
    assert kinds(script) == ["Send", "ExpectMessage", "ExpectTyping", "ExpectMessage"]
    texts = [s.text.written for s in script.steps if isinstance(s, ExpectMessage)]
    assert texts == ["One moment.", "Done."]


def test_delay_waits_before_a_user_message(tmp_path: Path) -> None:
    script = chat(tmp_path, "user: [Delay=250]\nlater\nbot: [Delay=3000] ok\n")
    sent, expected = script.steps
    assert isinstance(sent, Send) and sent.delay_ms == 250 and sent.activity.text == "later"
    assert isinstance(expected, ExpectMessage) and expected.text.written == "ok"


def test_attachments_sent_by_the_user(tmp_path: Path) -> None:
    (tmp_path / "card.json").write_text(json.dumps({"type": "AdaptiveCard"}), encoding="utf-8")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    script = chat(
        tmp_path,
        """
        user: look
        [Attachment=https://example.com/cat.jpg]
        [Attachment=card.json adaptivecard]
        [Attachment=photo.png]
        [AttachmentLayout=carousel]
        """,
    )
    (sent,) = script.steps
    assert isinstance(sent, Send) and sent.activity.text == "look"
    url, card, photo = sent.activity.attachments
    assert (url.content_type, url.content_url) == ("image/jpeg", "https://example.com/cat.jpg")
    assert card.content_type == "application/vnd.microsoft.card.adaptive"
    assert card.content == {"type": "AdaptiveCard"}
    assert photo.name == "photo.png" and photo.content_url == "data:image/png;base64,iVBORw=="
    assert sent.activity.attachment_layout == "carousel"


def test_attachments_suggestions_and_layout_expected_from_the_bot(tmp_path: Path) -> None:
    (tmp_path / "hero.json").write_text(json.dumps({"title": "Hi"}), encoding="utf-8")
    script = chat(
        tmp_path,
        """
        user: cards please
        bot: Here you go.
        [Attachment=hero.json hero]
        [Attachment=https://example.com/a.png "image/png"]
        [AttachmentLayout=list]
        [Suggestions=More | Stop]
        """,
    )
    expected = script.steps[1]
    assert isinstance(expected, ExpectMessage) and expected.text.written == "Here you go."
    assert expected.attachments is not None
    hero, image = expected.attachments
    assert hero.content_type == "application/vnd.microsoft.card.hero"
    assert hero.content == {"title": "Hi"}
    assert (image.content_type, image.content_url) == ("image/png", "https://example.com/a.png")
    assert expected.attachment_layout == "list"
    assert expected.suggestions == ("More", "Stop")


def test_conversation_update_on_one_line_or_several(tmp_path: Path) -> None:
    script = chat(
        tmp_path,
        """
        users=Joe,Sue
        bot=LulaBot
        [ConversationUpdate=MembersAdded=LulaBot,Joe]
        [ConversationUpdate=
            MembersAdded=Sue
            MembersRemoved=Joe]
        bot: Hi Sue!
        """,
    )
    first, second, _ = script.steps
    assert isinstance(first, Send) and isinstance(second, Send)
    assert first.activity.type == ActivityTypes.conversation_update
    assert [(m.name, m.role) for m in first.activity.members_added] == [
        ("LulaBot", "bot"),
        ("Joe", "user"),
    ]
    assert [m.name for m in second.activity.members_added] == ["Sue"]
    assert [m.name for m in second.activity.members_removed] == ["Joe"]
    assert second.line == 4


def test_brackets_that_are_not_commands_are_text(tmp_path: Path) -> None:
    script = chat(tmp_path, "user: [x] marks the spot\nbot: /^fake: [a-z]+ \\[x\\]/\n")
    sent, expected = script.steps
    assert isinstance(sent, Send) and sent.activity.text == "[x] marks the spot"
    assert isinstance(expected, ExpectMessage) and expected.text.kind == "regex"


def test_bot_text_forms(tmp_path: Path) -> None:
    script = chat(tmp_path, "user: a\nbot: exact text\nbot: /regex/\nbot: wild*card\n")
    assert [s.text.kind for s in script.steps if isinstance(s, ExpectMessage)] == [
        "exact",
        "regex",
        "wildcard",
    ]


def test_typing_twice_is_kept_for_the_runner_to_merge(tmp_path: Path) -> None:
    script = chat(tmp_path, "user: a\nbot: [Typing][Typing]\nb\n")
    assert [type(s) for s in script.steps] == [Send, ExpectTyping, ExpectTyping, ExpectMessage]


def test_mcp_header_press_tool_calls_and_invoke_response(tmp_path: Path) -> None:
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "mcp.json").write_text(json.dumps(MCP), encoding="utf-8")
    script = chat(
        tmp_path,
        """
        channelId=msteams
        mcp=tools/mcp.json

        user: cancel it
        bot: Approve? *
        user: [Press=Approve]
        bot: [InvokeResponse=200] *Done.*
        bot: [ToolCalls=shop/lookup_order,  shop/cancel_order]
        user: [Press=Approve]
        bot: [InvokeResponse=200]
        [ToolCalls=]
        """,
    )
    assert script.mcp_config == (tmp_path / "tools" / "mcp.json").resolve()
    assert kinds(script) == [
        "Send", "ExpectMessage", "Send", "ExpectInvokeResponse", "ExpectToolCalls",
        "Send", "ExpectInvokeResponse", "ExpectToolCalls",
    ]  # fmt: skip
    _, _, press, invoke, calls, again, bare, none = script.steps
    assert isinstance(press, Send) and press.press == "Approve" and press.line == 6
    assert press.activity.channel_id == "msteams" and press.activity.text is None
    assert isinstance(again, Send) and again.activity.id != press.activity.id  # two presses
    assert isinstance(invoke, ExpectInvokeResponse) and invoke.status == 200
    assert invoke.text.kind == "wildcard" and invoke.text.matches("Cancel it\nDone. Cancelled.")
    assert invoke.describe() == "[InvokeResponse=200] *Done.*  (wildcard)"
    assert isinstance(bare, ExpectInvokeResponse) and not bare.text.written
    assert isinstance(calls, ExpectToolCalls) and (calls.line, calls.tools) == (
        8,
        ("shop/lookup_order", "shop/cancel_order"),
    )
    assert calls.describe() == "[ToolCalls=shop/lookup_order, shop/cancel_order]"
    assert isinstance(none, ExpectToolCalls) and (none.line, none.tools) == (11, ())


def test_without_an_mcp_header_a_script_has_no_tools(tmp_path: Path) -> None:
    script = chat(tmp_path, "user: hi\nbot: [InvokeResponse=404]\n")
    assert script.mcp_config is None
    assert [(type(s), s.line) for s in script.steps] == [(Send, 1), (ExpectInvokeResponse, 2)]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("mcp=missing.json\nuser: hi\n", 1, "cannot read the MCP config"),
        ("user: hi\nbot: ok\n[ToolCalls=shop/lookup_order]\n", 3, "needs an mcp= header"),
        ("user: hi\nbot: [ToolCalls=]\n", 2, "needs an mcp= header"),
        ("mcp=mcp.json\nuser: hi\nbot: [ToolCalls=lookup_order]\n", 3, "server/tool"),
        ("mcp=mcp.json\nuser: [ToolCalls=shop/a]\n", 2, "[ToolCalls=…] belongs in a bot: turn"),
        ("mcp=mcp.json\nuser: hi\nbot: ok\n[ToolCalls]\n", 4, "malformed command"),
        ("user: hi\nbot: [Press=Approve]\n", 2, "[Press=…] belongs in a user's turn"),
        ("user: hi\nbot: ok\nuser: [Press=]\n", 3, "write [Press=<button title>]"),
        ("user: hi\nbot: [InvokeResponse=ok]\n", 2, "write [InvokeResponse=<status>]"),
        ("user: [InvokeResponse=200]\n", 1, "[InvokeResponse=…] belongs in a bot: turn"),
    ],
)
def test_a_malformed_tool_command_names_file_and_line(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    (tmp_path / "mcp.json").write_text(json.dumps(MCP), encoding="utf-8")
    with pytest.raises(ScriptError) as caught:
        chat(tmp_path, text, name="broken.chat")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{tmp_path / 'broken.chat'}:{line}: ")
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("user=Joe=Sue\nuser: hi\n", 1, "malformed header"),
        ("hello there\nuser: hi\n", 1, "text before the first turn"),
        ("[Typing]\nuser: hi\n", 1, "only [ConversationUpdate=…] may come before"),
        ("user: hi\nbot:\nuser: bye\n", 2, "empty bot: turn"),
        ("user: hi\nbot: [Delay=soon] ok\n", 2, "write [Delay=<milliseconds>]"),
        ("user: hi [Suggestions=a|b]\n", 1, "[Suggestions=…] belongs in a bot: turn"),
        ("user: hi\nbot: ok\n[AttachmentLayout=grid]\n", 3, "carousel or list"),
        ("user: hi\nbot: [HeroCard\n  title=Hi]\n", 2, "card commands are not supported"),
        ("user: hi\nbot: /fake: (/\n", 2, "invalid regular expression"),
        ("user: hi\n\n[ConversationUpdate=\n  MembersAdded=Ann\n", 3, "missing its ]"),
        ("[ConversationUpdate=Joined=Ann]\n", 1, "MembersAdded=a,b"),
        ("user: a\nbot: ok\n[Attachment=x.png weird]\n", 3, "unknown content type 'weird'"),
        ("user: [Attachment=missing.png]\n", 1, "cannot read attachment"),
        ("user: hi\nbot: [Attachment=missing.json]\n", 2, "cannot read attachment"),
        ("user: hi\nbot: [Typing=yes]\n", 2, "malformed command [Typing=yes]"),
        ("users=Joe,Sue\nJoe->Sue: hi\n", 2, "only bot lines name a recipient"),
    ],
)
def test_a_malformed_script_names_file_and_line(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    with pytest.raises(ScriptError) as caught:
        chat(tmp_path, text, name="broken.chat")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{tmp_path / 'broken.chat'}:{line}: ")
    assert reason in str(caught.value)
