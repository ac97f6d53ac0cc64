"""The rules that find facts in a user's message, in the third person, and what they refuse."""

from __future__ import annotations

import pytest

from dialogs.memory.user_facts import (
    MAX_FACT_CHARS,
    clean,
    extract_facts,
    remember_request,
    second_person,
    third_person,
)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "My name is Ada and I live in Leeds.",
            {"name": "The user's name is Ada.", "home": "The user lives in Leeds."},
        ),
        ("hey, I'm Omar", {"name": "The user's name is Omar."}),
        ("my name's zoe", {"name": "The user's name is Zoe."}),
        ("People call me Bea.", {"name": "The user's name is Bea."}),
        ("I've just relocated to Cork recently", {"home": "The user lives in Cork."}),
        ("I'm based in Accra", {"home": "The user lives in Accra."}),
        (
            "I am an electrician at Volt Ltd",
            {
                "employer": "The user works at Volt Ltd.",
                "role": "The user works as an electrician.",
            },
        ),
        ("My boss is Hana Ito.", {"manager": "The user's manager is Hana Ito."}),
        ("I am severely allergic to sesame", {"allergy:sesame": "The user is allergic to sesame."}),
        ("I'm vegan", {"diet:vegan": "The user is vegan."}),
        ("I prefer short answers", {"prefers:short answers": "The user prefers short answers."}),
        ("I hate cilantro", {"likes:cilantro": "The user does not like cilantro."}),
        ("my cat is named Miso", {"my:cat": "The user's cat is Miso."}),
        (
            "My desk at the new office is B12.",
            {"my:desk at the new office": "The user's desk at the new office is B12."},
        ),
        ("My son's name is Leo", {"my:son": "The user's son is named Leo."}),
    ],
)
def test_first_person_statements_become_third_person_facts(
    message: str, expected: dict[str, str]
) -> None:
    assert {f.key: f.text for f in extract_facts(message)} == expected


@pytest.mark.parametrize(
    "message",
    [
        "What is my name?",
        "where do I live",
        "Do you know who my manager is?",
        "I'm tired",
        "I'm not sure",
        "If my name were Bob, what would it mean?",
        "That is not my car.",
        "my question is about Python",
        "Her name is Ana and she lives in Rome.",
        "",
    ],
)
def test_questions_hypotheticals_and_other_people_are_not_facts(message: str) -> None:
    assert extract_facts(message) == []


def test_moving_replaces_the_home_through_the_same_key() -> None:
    [before] = extract_facts("I live in Lisbon.")
    [after] = extract_facts("I moved to Porto.")
    assert before.key == after.key == "home"


def test_remember_requests_keep_free_text_in_the_third_person() -> None:
    fact = remember_request("Remember that I need to call my sister on Sunday")
    assert fact is not None and fact.text == "The user needs to call the user's sister on Sunday."
    assert remember_request("remember when we met?") is None
    assert remember_request("tell me a story") is None


def test_pronouns_and_back() -> None:
    assert third_person("I fly to Oslo and my bag is blue") == (
        "the user flies to Oslo and the user's bag is blue"
    )
    assert second_person("The user's name is Ada.") == "Your name is Ada."
    assert second_person("The user goes to work by bus.") == "You go to work by bus."


def test_clean_removes_control_characters_template_tokens_and_markup() -> None:
    text = "<|im_start|>assistant\x07 <i>hi</i> [INST] `x` **bold** \u202e"
    assert clean(text) == "hi x bold"


def test_a_50_kb_statement_gives_a_bounded_fact() -> None:
    fact = remember_request("remember " + "very long words " * 3500)
    assert fact is not None and len(fact.text) <= MAX_FACT_CHARS
    assert fact.text.endswith("…") and "  " not in fact.text
