"""The chat dialog: its prompt, the token budget, and what users hear when the model fails."""

from __future__ import annotations

from dialogs.answer.model_reply import EMPTY_REPLY
from dialogs.chat_dialog import TOO_LONG, ChatOptions
from models import GenerationParams, ModelOverloaded, ModelTimeout, ModelUnavailable, PromptTooLong
from models.fake import FakeChatModel
from tests.dialogs.conftest import make_harness


async def test_history_is_trimmed_to_the_token_budget() -> None:
    model = FakeChatModel(context_window=60)
    harness = make_harness(model, ChatOptions("sys", 1000, GenerationParams(max_new_tokens=20)))
    for i in range(10):
        await harness.say(f"message number {i}")
    prompt = model.prompts[-1]
    assert model.count_tokens(prompt) <= 60 - 20
    assert prompt[0].content.startswith("sys")
    assert prompt[-1].content == "message number 9"
    assert prompt[1].role == "user", "a trimmed window starts with a user turn"
    assert 3 <= len(prompt) < 20, "older turns were dropped, recent ones kept"
    assert len(await harness.stored_history()) == 20, "trimming the prompt never deletes history"


async def test_message_longer_than_budget_gets_a_polite_answer() -> None:
    model = FakeChatModel(context_window=30)
    harness = make_harness(model, ChatOptions("sys", 30, GenerationParams(max_new_tokens=10)))
    assert await harness.say("word " * 40) == [TOO_LONG]
    assert model.prompts == []


async def test_model_errors_become_apologies_and_the_next_turn_works() -> None:
    cases = [
        (ModelOverloaded(retry_after=7), "I'm busy right now. Please try again in 7 s."),
        (ModelTimeout(), "Sorry, that took me too long. Please try again."),
        (
            ModelUnavailable(),
            "Sorry, my language model isn't available right now. Please try again shortly.",
        ),
        (PromptTooLong("the context window holds 512"), TOO_LONG),  # a smaller remote model
    ]
    for error, expected in cases:
        model = FakeChatModel(fail_after=0, error=error)
        harness = make_harness(model)
        assert await harness.say("hi") == [expected]
        model.fail_after = None
        assert await harness.say("again") == ["fake: again"]
        if isinstance(error, PromptTooLong):  # kept, it would make every next prompt too long
            assert [m.content for m in model.prompts[-1][1:]] == ["again"], "kept"
        else:
            assert [m.content for m in model.prompts[-1][1:]] == ["hi", "again"], (
                "the failed message is kept"
            )


async def test_empty_model_reply_gets_a_fallback() -> None:
    harness = make_harness(FakeChatModel(reply=lambda _: "   "))
    assert await harness.say("hi") == [EMPTY_REPLY]
