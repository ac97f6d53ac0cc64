"""Long conversations fold into a summary; replies end on a sentence, streamed or not; an empty
reply is tried once more."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from dialogs.answer.model_reply import EMPTY_REPLY
from dialogs.answer.reply_ending import ELLIPSIS, ends_mid_sentence
from dialogs.chat_dialog import ChatOptions
from models import ChatMessage, GenerationParams
from models.fake import FakeChatModel
from tests.dialogs.memory_harness import MemoryBot

SMALL = ChatOptions("sys", 400, GenerationParams(max_new_tokens=40))


async def test_a_turn_2_statement_is_in_the_prompt_at_turn_40_and_old_turns_leave_in_chunks() -> (
    None
):
    model = FakeChatModel(context_window=400)
    bot = MemoryBot(model, memory_on=False, options=SMALL)  # only the summary can carry it
    await bot.say("Hello!")
    await bot.say("The meeting room for the launch is 4B.")
    starts = []
    for turn in range(3, 40):
        await bot.say(f"Question {turn}: how do clouds form over the sea at night?")
        starts.append(model.prompts[-1][1].content)
    await bot.say("Where is the launch meeting?")
    prompt = model.prompts[-1]
    assert "The user said: The meeting room for the launch is 4B." in prompt[0].content
    assert "4B" not in " ".join(m.content for m in prompt[1:-1]), "the turn itself left the window"
    assert prompt[-1].content.endswith(
        "(Known about the user: The user said: The meeting room for the launch is 4B.)"
    ), "and it sits next to the question"
    assert model.count_tokens(prompt) <= 400 - 40 - 10
    changes = sum(1 for a, b in itertools.pairwise(starts) if a != b)
    assert 1 <= changes <= len(starts) // 3, "the window moves in chunks, not every turn"


def long_reply(prompt: Sequence[ChatMessage]) -> str:
    sentence = "The lighthouse keeper walked up the stairs and looked at the sea."
    return " ".join([sentence] * 3) + " And then the keeper was able to keep " + "going " * 40


async def test_a_capped_reply_ends_on_a_sentence_in_one_message() -> None:
    bot = MemoryBot(FakeChatModel(reply=long_reply), options=SMALL)
    [reply] = await bot.say("tell me a story")
    assert not ends_mid_sentence(reply)
    assert reply.endswith("sea. " + ELLIPSIS) or reply.endswith("sea.")


async def test_a_streamed_capped_reply_ends_on_a_sentence_and_keeps_what_was_streamed() -> None:
    bot = MemoryBot(FakeChatModel(reply=long_reply, delay=0.005), options=SMALL)
    replies = await bot.say("tell me a story", channel="directline")
    updates = [a.text for a in bot.sent if a.type == "typing" and a.text and a.text != "Thinking…"]
    assert updates, "the reply streamed"
    final = replies[-1]
    assert final.startswith(updates[-1]), "the final message begins with the last streamed text"
    assert not ends_mid_sentence(final)
    assert "keep" not in final.split("sea.")[-1], "the unfinished sentence was never shown"


async def test_an_empty_reply_is_tried_once_more_then_the_fallback() -> None:
    answers = iter(["  ...  ", "Here you are."])
    model = FakeChatModel(reply=lambda _: next(answers))
    bot = MemoryBot(model, options=SMALL)
    assert await bot.say("hi") == ["Here you are."]
    assert len(model.prompts) == 2
    model = FakeChatModel(reply=lambda _: " ?! ")
    bot = MemoryBot(model, options=SMALL)
    assert await bot.say("hi", channel="directline") == [EMPTY_REPLY]
    assert len(model.prompts) == 2, "tried once more, not forever"
