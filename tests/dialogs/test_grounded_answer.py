"""A grounded reply keeps to what its passages say; otherwise it quotes them."""

from __future__ import annotations

from dialogs.knowledge.grounding import focus
from dialogs.knowledge.guard import grounded_answer, names, numbers, unsupported
from dialogs.knowledge.passages import Passage

LAMP = Passage(
    "The Zeta-9 lamp is sold by Brightwick. It runs for eleven hours on one charge. "
    "A full charge takes 90 minutes. The lamp weighs 1,250 grams.",
    "Lamp manual",
    "/m.md",
    "m",
    heading="Battery",
)
QUESTION = "How long does the Zeta-9 run on a charge?"


def test_numbers_are_compared_in_one_spelling() -> None:
    assert numbers("1,250 grams at 07:05, eleven hours, twenty-one days") == {
        "1250",
        "7:05",
        "11",
        "21",
    }
    assert names("The Zeta-9 is sold by Brightwick. Lamps glow.") == {"zeta", "brightwick"}


def test_a_reply_that_repeats_the_passage_is_kept() -> None:
    reply = "The Zeta-9 runs for 11 hours on one charge [1]."
    assert unsupported(reply, [LAMP], QUESTION) == []
    assert grounded_answer(reply, [LAMP], QUESTION) == reply


def test_a_wrong_number_or_name_gives_the_passage_s_own_sentences() -> None:
    quoted = focus(LAMP.text, QUESTION)  # what the prompt showed the model
    assert "It runs for eleven hours on one charge." in quoted
    for wrong, why in [
        ("The Zeta-9 runs for 4 hours.", "number 4"),
        ("The Zeta-9 is sold by Brightwik and runs eleven hours.", "name brightwik"),
    ]:
        assert why in unsupported(wrong, [LAMP], QUESTION)
        assert grounded_answer(wrong, [LAMP], QUESTION) == quoted


def test_a_question_about_a_quantity_wants_one_of_the_passage_s_numbers() -> None:
    vague = "The Zeta-9 lamp runs for a long time [1]."
    assert "no number for a question about a quantity" in unsupported(vague, [LAMP], QUESTION)
    assert grounded_answer(vague, [LAMP], QUESTION) == focus(LAMP.text, QUESTION)
    assert unsupported("The Zeta-9 is sold by Brightwick.", [LAMP], "Who sells the Zeta-9?") == []


def test_a_reply_about_something_else_gives_the_passage_s_sentences() -> None:
    reply = "Great question! Lamps are wonderful gifts for friends and family."
    assert unsupported(reply, [LAMP], QUESTION)[-1].endswith("words from the sources")
    assert grounded_answer(reply, [LAMP], QUESTION) == focus(LAMP.text, QUESTION)


def test_without_passages_or_reply_nothing_changes() -> None:
    assert grounded_answer("Paris has 2 million people.", [], "Tell me about Paris") == (
        "Paris has 2 million people."
    )
    assert grounded_answer("", [LAMP], QUESTION) == ""
