"""Memory by meaning (issue 25) through the dialogs, with the real embedding model the bot uses
(all-MiniLM-L6-v2 from its wheel, small: loaded once for the module): statements about the user's
life kept in their words, questions matched by meaning, corrections, "what do you know about me?",
and what never becomes a fact."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from dialogs.answer.memory_stage import ABOUT_ME_LEAD
from dialogs.memory.commands import NOTHING_KEPT
from dialogs.memory.fact_answers import ANSWER_LEAD
from dialogs.memory.meaning import FactMeaning
from dialogs.memory.statements import life_statements
from models import ModelUnavailable
from models.embeddings import EmbeddingWorker, HFEmbeddingModel
from models.fake import FakeChatModel
from tests.dialogs.memory_harness import MemoryBot


@pytest.fixture(scope="module")
def minilm() -> HFEmbeddingModel:
    return HFEmbeddingModel()


@pytest.fixture
async def meaning(minilm: HFEmbeddingModel) -> AsyncIterator[FactMeaning]:
    worker = EmbeddingWorker(minilm)
    yield FactMeaning(worker.embed)
    worker.close()


async def test_a_pets_name_is_kept_and_recalled_in_a_new_conversation(
    meaning: FactMeaning,
) -> None:
    model = FakeChatModel()
    bot = MemoryBot(model, meaning=meaning)
    await bot.say("Hi! I have a cat called Pixel.", conversation="c1")
    asked = len(model.prompts)
    reply = await bot.say("What's my cat called?", conversation="c2")
    assert reply == [ANSWER_LEAD + "you have a cat called Pixel."]
    assert len(model.prompts) == asked, "answered from the fact, not by the model"
    kept = await bot.say("/memory", conversation="c2")
    assert "- You have a cat called Pixel." in kept[0]


async def test_a_correction_replaces_the_fact_it_corrects(meaning: FactMeaning) -> None:
    bot = MemoryBot(FakeChatModel(), meaning=meaning)
    await bot.say("My parrot is called Mango.")
    await bot.say("My dentist appointment is on Thursday.")
    await bot.say("Actually, my parrot is called Kiwi, not Mango.")
    await bot.say("Sorry, it's on Friday.")  # no first person: the new value of the nearest fact
    kept = (await bot.say("/memory"))[0]
    assert "Kiwi" in kept and "Mango" not in kept
    assert "Your dentist appointment is on Friday." in kept and "Thursday" not in kept
    reply = await bot.say("Remind me, what's my parrot's name?", conversation="c2")
    assert "Kiwi" in reply[0] and "Mango" not in reply[0]


@pytest.mark.parametrize(
    "question",
    [
        "What do you know about me?",
        "so what have I told you about myself",
        "Tell me what you remember about me.",
    ],
)
async def test_what_do_you_know_about_me_answers_with_the_facts(
    meaning: FactMeaning, question: str
) -> None:
    model = FakeChatModel()
    bot = MemoryBot(model, meaning=meaning)
    await bot.say("I work as a paramedic in Leeds.")
    await bot.say("My daughter is called Maya.")
    asked = len(model.prompts)
    reply = (await bot.say(question))[0]
    assert reply.startswith(ABOUT_ME_LEAD)
    assert (
        "- You work as a paramedic in Leeds." in reply
        and "- Your daughter is called Maya." in reply
    )
    assert len(model.prompts) == asked


async def test_other_questions_go_to_the_model(meaning: FactMeaning) -> None:
    model = FakeChatModel()
    bot = MemoryBot(model, meaning=meaning)
    await bot.say("I have a cat called Pixel.")
    assert await bot.say("What do you know about volcanoes?") == [
        "fake: What do you know about volcanoes?"
    ]
    assert await bot.say("Tell me about yourself.") == ["fake: Tell me about yourself."]
    assert (await bot.say("What do you know about me?", user="u2"))[0] == NOTHING_KEPT


@pytest.mark.parametrize(
    "message",
    [
        "If I had a dog, I would call him Rex.",
        "My friend has a cat called Whiskers.",
        "My brother has a dog named Rex.",
        "Do you like cats?",
        "I wish I lived in Rome.",
        "Write a poem about a cat called Luna.",
        'My dad always says "I never lose at chess."',
        "I'm the Queen of England, just kidding.",
        "Cats are better than dogs.",
    ],
)
async def test_hypotheticals_other_people_and_questions_never_become_facts(
    meaning: FactMeaning, message: str
) -> None:
    bot = MemoryBot(FakeChatModel(), meaning=meaning)
    await bot.say(message)
    assert await bot.say("/memory") == [NOTHING_KEPT]


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        ("I have a cat called Pixel.", ["The user has a cat called Pixel."]),
        ("Oh, by the way, my daughter Maya just turned six!",
         ["The user's daughter Maya just turned six."]),
        ("We're moving to Leeds in June.",
         ["The user and their family are moving to Leeds in June."]),
        ("I can't stand olives.", ["The user does not like olives."]),  # a rule's words
        ("My wife is a nurse.", ["The user's wife is a nurse."]),
        ("I'm a pescatarian but I eat eggs.",
         ["The user is a pescatarian.", "The user eats eggs."]),
        ("My mum is allergic to cats.", []),
        ("In my novel, the hero has a cat called Zed.", []),
        ("I'm not sure.", []),
        ("Can you help me with my essay?", []),
    ],
)  # fmt: skip
def test_statements_in_the_users_words_in_the_third_person(message: str, kept: list[str]) -> None:
    assert [s.fact.text for s in life_statements(message) if s.fact] == kept


async def test_without_the_embedding_model_questions_are_answered_by_words() -> None:
    async def unavailable(texts: Sequence[str]) -> np.ndarray:
        raise ModelUnavailable("no wheel")

    bot = MemoryBot(FakeChatModel(), meaning=FactMeaning(unavailable))
    await bot.say("My name is Ada.")
    assert await bot.say("What is my name?") == [ANSWER_LEAD + "your name is Ada."]


async def test_a_message_that_only_states_facts_is_answered_with_what_was_kept(
    meaning: FactMeaning,
) -> None:
    model = FakeChatModel()
    bot = MemoryBot(model, meaning=meaning)
    reply = await bot.say("My daughter is called Maya and I work as a deckhand.")
    assert reply == ["Got it, I'll remember: Your daughter is called Maya. You work as a deckhand."]
    assert model.prompts == [], "the model is not asked"
    [reply] = await bot.say("I have a cat called Pixel. What toy should I get her?")
    assert reply.startswith("fake: I have a cat called Pixel. What toy"), "asking: the model's"
