"""Passages and answer sentences chosen by meaning (dialogs/knowledge/meaning.py), and follow-ups
that go back to the passages the previous answer cited, through the chat dialog.

`ConceptEmbedder` is a deterministic stand-in for the embedding model with the one property
that matters here: words of one concept ("gym", "fitness", "wellbeing") are close although they
share no letters, and other words are far apart. The real model's behaviour on paraphrases is
tested in tests/knowledge/test_embedded_embeddings.py (slow)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from dialogs.answer.knowledge_stage import follow_up_context, is_follow_up
from dialogs.chat_dialog import NOT_IN_DOCUMENTS
from dialogs.knowledge.meaning import (
    CITED,
    MeaningOptions,
    MeaningRanker,
    displaces,
    identifiers,
    sentence_texts,
)
from dialogs.knowledge.passages import Passage
from dialogs.text import STOPWORDS
from models import ChatMessage
from models.fake import FakeChatModel
from tests.dialogs.conftest import make_harness

CONCEPTS = {
    "fitness": "gym membership wellbeing fitness sport",
    "money": "claim allowance refund refunds pays pounds cost",
    "weight": "heavy weighs weight grams",
    "lamp": "lamp zeta-9 light",
    "duration": "long hours runs",
}
DIMENSION = 1024


class ConceptEmbedder:
    """Each word adds to its concept's dimension, or to a hashed one; unit-length rows."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._concept = {
            word: index for index, words in enumerate(CONCEPTS.values()) for word in words.split()
        }

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += texts
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[\w-]+", text.lower()):
                if word in STOPWORDS:
                    continue
                if word in self._concept:
                    out[row, self._concept[word]] += 1.0
                else:
                    digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
                    out[row, len(CONCEPTS) + int.from_bytes(digest) % (DIMENSION - 10)] += 1.0
            out[row] /= max(float(np.linalg.norm(out[row])), 1e-9)
        return out


BENEFITS = Passage(
    "Staff parking is free. The canteen opens at noon. "
    "The wellbeing allowance refunds up to 30 pounds a month.",
    "Staff benefits",
    "/benefits.md",
    "benefits",
    heading="Benefits",
)
CLAIMS = Passage(
    "Claim travel expenses within 60 days. Membership of the union is voluntary.",
    "Expenses",
    "/expenses.md",
    "expenses",
)
LAMP = Passage(
    "The Zeta-9 lamp runs for 11 hours. The lamp weighs 300 grams.",
    "Lamp manual",
    "/m.md",
    "m",
)
# The concept embedder's similarities are not the real model's: its bars are its own.
OPTIONS = MeaningOptions(min_score=0.3, answered_min_score=0.3)
DEFAULT_BARS = MeaningOptions(answered_min_score=0.3)


async def test_a_paraphrase_finds_its_passage_and_sentence_by_meaning() -> None:
    ranker = MeaningRanker(ConceptEmbedder(), OPTIONS)
    found = await ranker.rank("Can I claim my gym membership?", [CLAIMS, BENEFITS])
    assert found[0].document_id == "benefits", "the passage that shares words with it loses"
    assert "30 pounds" in found[0].focus
    assert found[0].sentence_score is not None and found[0].sentence_score >= 0.3
    assert await ranker.rank("What is the capital of France?", [CLAIMS, BENEFITS]) == []


async def test_the_retrievers_choice_stays_unless_meaning_is_clearly_better() -> None:
    question = "Can I claim my gym membership?"  # benefits' sentence 0.60, expenses' 0.52
    loose = MeaningRanker(
        ConceptEmbedder(),
        MeaningOptions(min_score=0.3, answered_min_score=0.3, promote_margin=0.05),
    )
    found = await loose.rank(question, [CLAIMS, BENEFITS], choice=CLAIMS)
    assert found[0].document_id == "benefits", "its sentence is closer by more than the margin"
    assert found[1].document_id == "expenses", "the choice it displaced follows"
    ranker = MeaningRanker(
        ConceptEmbedder(), MeaningOptions(min_score=0.3, answered_min_score=0.3, promote_margin=0.1)
    )
    found = await ranker.rank(question, [CLAIMS, BENEFITS], choice=CLAIMS)
    assert [p.document_id for p in found] == ["expenses", "benefits"], "not by the margin"
    weigh = await ranker.rank("How much does the lamp weigh?", [LAMP], choice=LAMP)
    assert [p.document_id for p in weigh] == ["m"], "a choice that answers stays"


async def test_a_passage_whose_sentences_answer_nothing_asked_is_not_used() -> None:
    """A passage the retriever chose whose every sentence is far from the question is not used
    (nothing is cited), nor is any other candidate as far; one whose sentence answers is. Where the
    bar lies for the real model: tests/knowledge/test_embedded_embeddings.py."""
    question = "What is the capital of France?"
    everything = MeaningRanker(ConceptEmbedder(), MeaningOptions(answered_min_score=0.0))
    assert [p.document_id for p in await everything.rank(question, [LAMP], choice=LAMP)] == ["m"]
    ranker = MeaningRanker(ConceptEmbedder(), MeaningOptions(answered_min_score=0.3))
    assert await ranker.rank(question, [LAMP], choice=LAMP) == []
    assert await ranker.rank(question, [LAMP, BENEFITS]) == []
    weigh = await ranker.rank("How heavy is the lamp?", [LAMP, BENEFITS], choice=LAMP)
    assert [p.document_id for p in weigh] == ["m"]


def test_a_choice_is_displaced_on_sentence_and_chunk_evidence_together() -> None:
    options = MeaningOptions(min_score=0.44, promote_margin=0.05)
    choice = replace(LAMP, score=0.65, sentence_score=0.42)
    by_name = replace(CLAIMS, score=0.45, sentence_score=0.56)  # a shared name, little else
    assert not displaces(by_name, choice, options)
    paraphrase = replace(BENEFITS, score=0.3, sentence_score=0.62)
    assert displaces(paraphrase, replace(choice, score=0.33), options)
    assert not displaces(replace(paraphrase, sentence_score=0.4), choice, options), "the bar"
    cited = replace(paraphrase, score=0.0, found_by=CITED)
    assert displaces(cited, choice, options), "not scored by a search: on its sentences"


async def zeta_focus(manual: str) -> str:
    """The answer sentences of a lamp manual for "How heavy is the Zeta-9?"."""
    lamp = Passage(manual, "Lamp manual", "/m.md", "m")
    found = await MeaningRanker(ConceptEmbedder(), OPTIONS).rank(
        "How heavy is the Zeta-9?", [lamp], choice=lamp
    )
    return found[0].focus


async def test_the_answer_sentences_keep_the_word_choice_and_add_the_best_by_meaning() -> None:
    focus = await zeta_focus(
        "The Zeta-9 lamp is made in Oslo. The Zeta-9 lamp is sold in tins. "
        "It weighs 300 grams. Replace the Zeta-9 bulb yearly."
    )
    assert "It weighs 300 grams." in focus, "the best by meaning, sharing no word"
    assert "made in Oslo" in focus and "sold in tins" in focus, "the two the words chose"
    assert "bulb" not in focus


async def test_the_two_sentences_closest_in_meaning_are_both_shown() -> None:
    """The figure asked for is often in the sentence after the closest one (a rule, then its
    exception or its other case): both go to the model, beside the word choice."""
    focus = await zeta_focus(
        "The Zeta-9 is made in Oslo. The Zeta-9 is sold in tins. "
        "It weighs 300 grams. Boxed, it weighs 900 grams. Replace the bulb yearly."
    )
    assert "It weighs 300 grams." in focus and "Boxed, it weighs 900 grams." in focus
    assert "made in Oslo" in focus and "sold in tins" in focus
    assert "bulb" not in focus


async def test_sentence_vectors_are_embedded_once_per_chunk() -> None:
    embedder = ConceptEmbedder()
    ranker = MeaningRanker(embedder, OPTIONS)
    await ranker.rank("How heavy is the lamp?", [LAMP])
    embedded = len(embedder.texts)
    await ranker.rank("How long does the lamp run?", [LAMP])
    assert len(embedder.texts) == embedded + 1, "only the new question"


async def test_passages_of_one_section_answer_together() -> None:
    first = Passage("The lamp runs for 11 hours.", "Manual", "/m.md", "m", heading="Battery")
    second = Passage("The lamp weighs 300 grams.", "Manual", "/m.md", "m", heading="Battery")
    found = await MeaningRanker(ConceptEmbedder(), OPTIONS).rank(
        "lamp hours weight", [first, second]
    )
    assert (
        len(found) == 1
        and found[0].text == "The lamp runs for 11 hours. The lamp weighs 300 grams."
    )


def test_a_follow_up_is_a_short_question_that_refers_back() -> None:
    assert is_follow_up("How heavy is it?")
    assert is_follow_up("and the other one?")
    assert not is_follow_up("thanks, that's all"), "no question: small talk"
    assert not is_follow_up("What is the capital of France?")
    history = [ChatMessage("user", "How long does the lamp run?"), ChatMessage("assistant", "11 h")]
    assert follow_up_context(history, "How heavy is it?") == "How long does the lamp run?\n11 h"
    assert follow_up_context(history, "Who wrote Hamlet?") == ""


class FirstOnly:
    """Finds the lamp passage for a question that names the lamp, nothing for any other."""

    async def search(self, query: str, limit: int) -> list[Passage]:
        return [LAMP] if "lamp" in query.lower() and "heavy" not in query.lower() else []


async def test_a_follow_up_goes_back_to_the_passage_the_answer_cited() -> None:
    model = FakeChatModel(reply=lambda _: "It runs for 11 hours.")
    harness = make_harness(
        model, retriever=FirstOnly(), ranker=MeaningRanker(ConceptEmbedder(), DEFAULT_BARS)
    )
    first = await harness.say("How long does the lamp run?")
    assert first[0].endswith("Sources: [1] Lamp manual")
    await harness.say("How heavy is it?")
    prompt = model.prompts[-1][-1].content
    assert "The lamp weighs 300 grams." in prompt, "the cited passage, kept in the conversation"
    assert prompt.endswith("Question: How heavy is it?")


async def test_without_a_citation_there_is_nothing_to_go_back_to() -> None:
    model = FakeChatModel(reply=lambda _: "Hello!")
    harness = make_harness(
        model, retriever=FirstOnly(), ranker=MeaningRanker(ConceptEmbedder(), DEFAULT_BARS)
    )
    await harness.say("hello")
    await harness.say("How heavy is it?")
    assert model.prompts[-1][-1].content == "How heavy is it?"


async def test_a_full_cache_keeps_what_the_turn_uses() -> None:
    embedder = ConceptEmbedder()
    ranker = MeaningRanker(
        embedder, MeaningOptions(min_score=0.3, answered_min_score=0.3, cache_chunks=1)
    )
    await ranker.rank("How heavy is the lamp?", [LAMP])
    found = await ranker.rank("Can I claim my gym membership?", [LAMP, BENEFITS])
    assert [p.document_id for p in found] == ["benefits"]


async def test_a_passage_holding_the_code_asked_for_answers() -> None:
    """Codes mean little to an embedding model: a passage holding the one the question names is
    used although no sentence of it is close; the same passage for another code is not."""
    form = Passage("Use form RW-7 for remote days.", "Handbook", "/h.md", "h")
    ranker = MeaningRanker(ConceptEmbedder(), MeaningOptions(answered_min_score=0.9))
    found = await ranker.rank("Where do I find form rw-7?", [form], choice=form)
    assert [p.document_id for p in found] == ["h"]
    assert await ranker.rank("Where do I find form RW-8?", [form], choice=form) == []
    assert identifiers("Ticket INC-4711 from the 2nd, at 10am, about the ZX81") == [
        "inc-4711",
        "zx81",
    ]
    assert identifiers("open 24-hour, 30-day returns, 9am-5pm, 13th-month pay, 10days") == []
    assert identifiers("form RW\u20117 (a PDF's non-breaking hyphen), v2.1") == ["rw-7", "v2.1"]
    in_heading = replace(form, text="Send it to your lead.", heading="Form RW-7")
    assert await ranker.rank("Where is form RW-7?", [in_heading], choice=in_heading) != []


async def test_a_choice_that_answers_nothing_gives_way_to_the_retrievers_next() -> None:
    """The retriever's first passage answers nothing asked; its second holds the code asked for:
    the second is used (not nothing, and not one chosen by meaning alone)."""
    first = Passage("Holidays are booked in the HR app.", "Handbook", "/h.md", "h", heading="A")
    second = Passage("Form RW-7 is for remote days.", "Forms", "/f.md", "f")
    ranker = MeaningRanker(ConceptEmbedder(), MeaningOptions(answered_min_score=0.9))
    found = await ranker.rank("What is form RW-7 for?", [first, second], choice=first)
    assert [p.document_id for p in found] == ["f"]


async def test_a_file_the_user_attached_may_always_answer() -> None:
    """The bars apply to the organisation's documents; what the user put in front of the bot is
    what they most likely ask about."""
    ranker = MeaningRanker(ConceptEmbedder(), MeaningOptions(answered_min_score=0.3))
    question = "What is the capital of France?"
    assert await ranker.rank(question, [LAMP], choice=LAMP) == []
    attached = replace(LAMP, attached=True)
    assert [p.attached for p in await ranker.rank(question, [attached], choice=attached)] == [True]


async def test_sentence_vectors_the_index_keeps_are_not_embedded_again() -> None:
    """A turn embeds the question only when the index kept the candidates' sentence vectors;
    ones of another size (another model) are embedded as before."""
    embedder = ConceptEmbedder()
    kept = await ConceptEmbedder().embed(sentence_texts(LAMP.text, LAMP.heading))
    ranker = MeaningRanker(embedder, OPTIONS)
    found = await ranker.rank("How heavy is the lamp?", [replace(LAMP, sentence_vectors=kept)])
    assert "300 grams" in found[0].focus
    assert embedder.texts == ["How heavy is the lamp?"]
    wrong_size = replace(CLAIMS, sentence_vectors=kept[:, :8])
    await ranker.rank("Can I claim my gym membership?", [wrong_size])
    assert embedder.texts[-2:] == sentence_texts(CLAIMS.text, CLAIMS.heading)


async def test_a_question_the_documents_are_about_and_do_not_answer_is_not_guessed() -> None:
    """The lamp manual passes the retriever's bar for any lamp question; one it does not answer
    ("Is the lamp sold in France?") gets the bot's own words, not the model's guess and no
    citation; a statement about the lamp, and a question it answers, go to the model."""
    model = FakeChatModel(reply=lambda _: "It runs for 11 hours.")
    harness = make_harness(
        model,
        retriever=FirstOnly(),
        ranker=MeaningRanker(ConceptEmbedder(), MeaningOptions(answered_min_score=0.5)),
    )
    [reply] = await harness.say("Is the lamp sold in France?")
    assert reply == NOT_IN_DOCUMENTS and model.prompts == []
    await harness.say("I like my lamp.")
    assert len(model.prompts) == 1, "not a question: the model replies"
    [answered] = await harness.say("How many hours does the lamp run?")
    assert answered.endswith("Sources: [1] Lamp manual") and len(model.prompts) == 2
