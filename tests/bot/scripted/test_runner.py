"""Replaying scripts against the bot: what passes, and how a failure reads."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.schema import Activity, ActivityTypes, HeroCard

from bot.scripted.chatdown import load_chat
from bot.scripted.errors import ScriptError, ScriptFailure
from bot.scripted.model_choice import ScriptModels
from bot.scripted.runner import Replay, load_script, run_file, run_script
from bot.settings import Settings
from models import ChatMessage
from models.fake import FakeChatModel


def write(tmp_path: Path, text: str, name: str = "script.chat") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


async def replay(
    tmp_path: Path,
    text: str,
    model: FakeChatModel | None = None,
    settings: Settings | None = None,
) -> None:
    script = load_chat(write(tmp_path, text))
    await run_script(script, settings or Settings(), model or FakeChatModel())


async def test_a_conversation_that_follows_the_script_passes(tmp_path: Path) -> None:
    await replay(
        tmp_path,
        """
        user: hello
        bot: [Typing]
        bot: fake: hello
        user: /feedback
        bot: How were my answers? (1) Great, (2) OK, or (3) Poor
        user: cancel
        bot: Cancelled.
        """,
    )


async def test_a_wrong_expectation_fails_with_a_diff_and_the_conversation(tmp_path: Path) -> None:
    with pytest.raises(ScriptFailure) as caught:
        await replay(
            tmp_path,
            """
            user: hello
            bot: fake: hello
            user: /reset
            bot: Done: I forgot everything.
            user: never reached
            """,
        )
    failure = caught.value
    assert (failure.path.name, failure.line) == ("script.chat", 4)
    report = str(failure)
    assert report.splitlines()[:6] == [
        f"{tmp_path / 'script.chat'}:4: the bot's reply does not match the script (text)",
        "  expected: Done: I forgot everything.",
        "  actual:   Done: I've forgotten our conversation. What shall we talk about?",
        "  diff (- expected, + actual):",
        "    - Done: I forgot everything.",
        "    + Done: I've forgotten our conversation. What shall we talk about?",
    ]
    assert report.splitlines()[6:] == [
        "  conversation up to here:",
        "    user: hello",
        "    bot: [Typing]",
        "    bot: fake: hello",
        "    user: /reset",
        "    bot: [Typing]",
        "    bot: Done: I've forgotten our conversation. What shall we talk about?",
    ]


async def test_a_pattern_that_does_not_match_shows_both_sides(tmp_path: Path) -> None:
    with pytest.raises(ScriptFailure) as caught:
        await replay(tmp_path, "user: hi\nbot: /^real: /\n")
    assert "expected: /^real: /  (regex)" in str(caught.value)
    assert "actual:   fake: hi" in str(caught.value)
    assert "diff" not in str(caught.value)


async def test_a_missing_reply_fails(tmp_path: Path) -> None:
    with pytest.raises(ScriptFailure) as caught:
        await replay(tmp_path, "user: hi\nbot: fake: hi\nbot: and more\n")
    assert caught.value.line == 3
    assert caught.value.reason == "the bot sent no further reply in this turn"
    assert caught.value.actual == "(no reply)"


@pytest.mark.parametrize(
    ("text", "line", "before"),
    [
        ("user: /help\nuser: hi\nbot: fake: hi\n", 2, "the user's next turn"),
        ("user: hi\n", 1, "the script ends"),
    ],
)
async def test_a_reply_the_script_does_not_mention_fails(
    tmp_path: Path, text: str, line: int, before: str
) -> None:
    with pytest.raises(ScriptFailure) as caught:
        await replay(tmp_path, text)
    assert caught.value.line == line
    assert caught.value.reason == "the bot sent a reply that the script does not expect"
    assert caught.value.expected == f"(no more replies before {before})"


async def test_typing_is_checked_only_where_the_script_states_it(tmp_path: Path) -> None:
    with pytest.raises(ScriptFailure) as caught:
        await replay(tmp_path, "[ConversationUpdate=MembersAdded=user]\nbot: [Typing]\nHi*\n")
    assert (caught.value.line, caught.value.expected) == (2, "[Typing]")
    assert caught.value.actual.startswith("Hi, I'm botloom")


async def test_one_typing_line_stands_for_the_repeated_indicator(tmp_path: Path) -> None:
    slow = FakeChatModel(delay=0.03)
    settings = Settings(typing_interval_s=0.01)
    await replay(tmp_path, "user: a b c\nbot: [Typing]\nbot: fake: a b c\n", slow, settings)
    with pytest.raises(ScriptFailure) as caught:
        await replay(tmp_path, "user: a b c\nbot: wrong\n", slow, settings)
    assert caught.value.conversation.count("bot: [Typing]") == 1


async def test_suggested_actions_are_checked(tmp_path: Path) -> None:
    script = (
        "channelId=emulator\nuser: /feedback\nbot: How were my answers? [Suggestions=Great|Poor]\n"
    )
    with pytest.raises(ScriptFailure) as caught:
        await replay(tmp_path, script)
    assert caught.value.reason == "the bot's reply does not match the script (suggested actions)"
    assert caught.value.actual == "How were my answers?\n[Suggestions=Great|OK|Poor]"


async def test_the_recipient_of_a_bot_line_is_checked(tmp_path: Path) -> None:
    script = "users=Joe,Sue\nJoe: hi\nbot->Joe: fake: hi\nSue: hey\nbot->Joe: fake: hey\n"
    with pytest.raises(ScriptFailure) as caught:
        await replay(tmp_path, script)
    assert caught.value.line == 5
    assert caught.value.actual == "fake: hey\n(to Sue)"


class BrokenTokenizer(FakeChatModel):
    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        raise RuntimeError("tokenizer exploded")


async def test_a_turn_that_raises_is_named_in_the_failure(tmp_path: Path) -> None:
    with pytest.raises(ScriptFailure) as caught:
        await replay(tmp_path, "user: hi\nbot: fake: hi\n", BrokenTokenizer())
    report = str(caught.value)
    assert "actual:   Sorry, something went wrong on my side. Please try again." in report
    assert "a turn raised RuntimeError: tokenizer exploded" in report
    assert 'in count_tokens\n        raise RuntimeError("tokenizer exploded")' in report


async def test_edits_and_deletions_show_their_final_state(tmp_path: Path) -> None:
    async def logic(turn_context: TurnContext) -> None:
        draft = await turn_context.send_activity("draft")
        await turn_context.update_activity(Activity(id=draft.id, type="message", text="final"))
        gone = await turn_context.send_activity("oops")
        await turn_context.delete_activity(gone.id)

    script = load_chat(write(tmp_path, "user: hi\nbot: final\n"))
    await Replay(script, logic).run()


async def test_attachments_are_checked_where_the_script_states_them(tmp_path: Path) -> None:
    async def logic(turn_context: TurnContext) -> None:
        card = CardFactory.hero_card(HeroCard(title="Hi"))
        await turn_context.send_activity(MessageFactory.attachment(card))

    write(tmp_path, '{"title": "Hi"}', name="hero.json")
    stated = "user: card\nbot: [Attachment=hero.json hero]\n"
    await Replay(load_chat(write(tmp_path, stated)), logic).run()
    two = "user: card\nbot: [Attachment=hero.json hero]\n[Attachment=https://x.test/a.png]\n"
    with pytest.raises(ScriptFailure) as caught:
        await Replay(load_chat(write(tmp_path, two)), logic).run()
    assert caught.value.reason == "the bot's reply does not match the script (attachments)"
    assert caught.value.actual == (
        "[Attachment contentType=application/vnd.microsoft.card.hero content={…}]\n"
        "[AttachmentLayout=list]"
    )


async def test_scripted_replies_beside_the_script(tmp_path: Path) -> None:
    path = write(tmp_path, "user: capital of France?\nbot: Paris.\nuser: and Italy?\nbot: Rome.\n")
    (tmp_path / "script.replies").write_text("Paris.\n", encoding="utf-8")
    settings = Settings()
    with pytest.raises(ScriptFailure) as caught:
        await run_file(path, settings, ScriptModels("replies", settings))
    assert caught.value.notes[0].startswith("the bot asked for more replies than")
    assert (
        caught.value.actual
        == "Sorry, something went wrong while I was answering. Please try again."
    )
    (tmp_path / "script.replies").write_text("Paris.\nRome.\n", encoding="utf-8")
    await run_file(path, settings, ScriptModels("replies", settings))


def test_only_chat_and_transcript_files_are_scripts(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match=r"should end in \.chat or \.transcript"):
        load_script(tmp_path / "notes.txt")


async def test_typing_sent_by_the_user_is_delivered(tmp_path: Path) -> None:
    seen: list[str] = []

    async def logic(turn_context: TurnContext) -> None:
        seen.append(turn_context.activity.type)
        if turn_context.activity.type == ActivityTypes.message:
            await turn_context.send_activity("ok")

    await Replay(load_chat(write(tmp_path, "user: [Typing]\nuser: hi\nbot: ok\n")), logic).run()
    assert seen == ["typing", "message"]
