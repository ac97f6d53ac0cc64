"""Scripted replies beside a script: the file format and the model that answers with them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.scripted.errors import ScriptError
from bot.scripted.replies import (
    RepliesExhausted,
    ScriptedChatModel,
    format_reply,
    read_replies,
    replies_path,
    write_replies,
)
from models import ChatMessage, GenerationParams, complete

PROMPT = [ChatMessage("user", "hi")]


def test_one_reply_per_line_with_comments_and_json_strings(tmp_path: Path) -> None:
    path = tmp_path / "greeting.replies"
    path.write_text(
        '# replies for greeting.chat\n\nParis.\n"Two lines:\\nthis one"\n""\n  spaced  \n',
        encoding="utf-8",
    )
    assert read_replies(path) == ["Paris.", "Two lines:\nthis one", "", "  spaced  "]


@pytest.mark.parametrize(
    "reply", ["plain", "", "two\nlines", " padded ", "# not a comment", '"quoted"', "naïve ☃"]
)
def test_every_reply_reads_back_as_written(tmp_path: Path, reply: str) -> None:
    path = tmp_path / "x.replies"
    write_replies(path, [reply, "after"], comment="recorded")
    assert read_replies(path) == [reply, "after"]


def test_plain_replies_stay_plain() -> None:
    assert format_reply("The capital is Paris.") == "The capital is Paris."
    assert format_reply("a\nb") == '"a\\nb"'


def test_a_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.replies"
    path.write_text('fine\n"unterminated\n', encoding="utf-8")
    with pytest.raises(ScriptError, match=r"x\.replies:2: invalid JSON string"):
        read_replies(path)


async def test_the_model_answers_in_order_then_runs_out(tmp_path: Path) -> None:
    model = ScriptedChatModel(["one", "two"], source=tmp_path / "x.replies")
    params = GenerationParams()
    assert [await complete(model, PROMPT, params) for _ in range(2)] == ["one", "two"]
    with pytest.raises(RepliesExhausted, match=r"x\.replies lists no more replies"):
        await complete(model, PROMPT, params)
    assert model.exhausted and len(model.prompts) == 3


def test_replies_live_beside_the_script(tmp_path: Path) -> None:
    script = tmp_path / "greeting.chat"
    assert replies_path(script) == tmp_path / "greeting.replies"
    with pytest.raises(ScriptError, match=r"--model replies needs greeting\.replies"):
        ScriptedChatModel.beside(script)
    replies_path(script).write_text("hello\n", encoding="utf-8")
    assert ScriptedChatModel.beside(script).source == tmp_path / "greeting.replies"
