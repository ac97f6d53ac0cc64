from __future__ import annotations

import pytest

from dialogs.answer.prompt import PromptTooLong, build_prompt
from models import ChatMessage
from models.fake import FakeChatModel

MODEL = FakeChatModel()


def history(n: int) -> list[ChatMessage]:
    return [ChatMessage("user" if i % 2 == 0 else "assistant", f"m{i}") for i in range(n)]


def test_everything_fits() -> None:
    prompt = build_prompt(MODEL, "sys", history(4), "now", budget_tokens=1000)
    assert [m.content for m in prompt] == ["sys", "m0", "m1", "m2", "m3", "now"]


def test_oldest_are_dropped_and_window_starts_with_user() -> None:
    # each message costs 4 tokens: system + user = 8, so 14 leaves room for 1 history message
    prompt = build_prompt(MODEL, "sys", history(4), "now", budget_tokens=16)
    assert [m.content for m in prompt] == ["sys", "m2", "m3", "now"]
    prompt = build_prompt(MODEL, "sys", history(4), "now", budget_tokens=12)
    assert [m.content for m in prompt] == ["sys", "now"], "a lone assistant turn is dropped"


def test_without_system_prompt() -> None:
    assert [m.role for m in build_prompt(MODEL, "", [], "hi", budget_tokens=10)] == ["user"]


def test_too_long() -> None:
    with pytest.raises(PromptTooLong):
        build_prompt(MODEL, "sys", [], "a b c d e f", budget_tokens=8)
