"""Questions about the user answered from the kept facts, and the facts put next to a question."""

from __future__ import annotations

import pytest

from dialogs.memory.fact_answers import ANSWER_LEAD, answer_from_facts, relevant_facts
from dialogs.memory.user_facts import extract_facts, remembered
from models.fake import FakeChatModel
from tests.dialogs.memory_harness import MemoryBot
from tests.dialogs.test_long_conversations import SMALL


def facts_of(*statements: str) -> list[dict[str, str]]:
    facts = [fact.as_dict() for text in statements for fact in extract_facts(text)]
    note = remembered("my meeting is at noon on Monday")
    assert note is not None
    return [*facts, note.as_dict()]


FACTS = facts_of(
    "My name is Ana and I live in Oslo.",
    "I work at Acme as a baker.",
    "I'm allergic to cats.",
    "My boss is Jo Kim.",
    "My parrot is called Kiwi.",
    "I love chess.",
    "I'm 40 years old.",
    "My locker number at the gym is 4417.",
    "I'm vegetarian.",
)


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What is my name and where do I live?", "your name is Ana. You live in Oslo."),
        ("Who is my boss?", "your manager is Jo Kim."),
        ("What's my parrot's name?", "your parrot is Kiwi."),
        ("What am I allergic to?", "you are allergic to cats."),
        ("How old am I?", "you are 40 years old."),
        ("What is my gym locker number?", "your locker number at the gym is 4417."),
        ("When is my meeting?", "your meeting is at noon on Monday."),
        ("Do you know where I work?", "you work at Acme as a baker."),
        ("What do I do for a living?", "you work at Acme as a baker."),
        ("What is my diet?", "you are vegetarian."),
    ],
)
def test_a_question_about_the_user_is_answered_from_the_matching_facts(
    question: str, answer: str
) -> None:
    assert answer_from_facts(question, FACTS) == ANSWER_LEAD + answer


@pytest.mark.parametrize(
    "message",
    [
        "Where can I find good coffee in Oslo?",  # advice, and Oslo is only a value
        "What's the capital of my country?",  # about something of the user's
        "How do I boil an egg?",
        "What should I eat tonight?",
        "What's my favourite movie?",  # no kept fact says
        "Tell me a joke about my boss.",  # not a question about the user
        "What's a good restaurant near where I live?",
        "My name is Ana.",
        "What is the capital of Norway?",
    ],
)
def test_other_messages_are_left_to_the_model(message: str) -> None:
    assert answer_from_facts(message, FACTS) is None


def test_a_two_part_question_with_an_unknown_part_is_left_to_the_model() -> None:
    assert answer_from_facts("What is my name and who is my dentist?", FACTS) is None


def test_relevant_facts_share_a_word_with_the_message() -> None:
    texts = [f["text"] for f in relevant_facts("What should I eat tonight?", FACTS)]
    assert texts == ["The user is vegetarian."]
    assert relevant_facts("What is photosynthesis?", FACTS) == []


async def test_the_bot_answers_from_memory_without_the_model_in_a_new_conversation() -> None:
    model = FakeChatModel()
    bot = MemoryBot(model)
    await bot.say("I live in Oslo and my name is Ana.", conversation="c1")
    calls = len(model.prompts)
    replies = await bot.say("Where do I live?", conversation="c2")
    assert replies == [ANSWER_LEAD + "you live in Oslo."]
    assert len(model.prompts) == calls, "no model call"


async def test_a_question_the_facts_touch_gets_them_next_to_it_and_not_in_the_history() -> None:
    model = FakeChatModel()
    bot = MemoryBot(model)
    await bot.say("I'm vegetarian.")
    await bot.say("What should I eat tonight?")
    assert model.prompts[-1][-1].content == (
        "What should I eat tonight?\n\n(Known about the user: The user is vegetarian.)"
    )
    await bot.say("Thanks!")
    history = [m.content for m in model.prompts[-1][1:-1]]
    assert "What should I eat tonight?" in history, "the history keeps the message as typed"


async def test_with_memory_off_nothing_kept_answers() -> None:
    model = FakeChatModel()
    bot = MemoryBot(model, memory_on=False)
    await bot.say("My name is Ana.")
    assert await bot.say("What is my name?") == ["fake: What is my name?"]


async def test_in_a_group_chat_the_summary_answers_nobody() -> None:
    model = FakeChatModel(context_window=400)
    bot = MemoryBot(model, memory_on=False, options=SMALL)
    group = {"conversation_type": "groupChat"}
    await bot.say("My locker number at the gym is 4417.", user="a", **group)
    for turn in range(12):
        await bot.say(f"Question {turn}: how do clouds form over the sea at night?", **group)
    assert "4417" in model.prompts[-1][0].content, "folded into the summary"
    assert await bot.say("What is my gym locker number?", user="b", **group) == [
        "fake: What is my gym locker number?"
    ]
