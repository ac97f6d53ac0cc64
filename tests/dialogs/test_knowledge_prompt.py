"""The grounding step of the prompt: passages before the question, within their token budget;
the follow-up query."""

from __future__ import annotations

from dialogs.answer.knowledge_stage import follow_up_query
from dialogs.knowledge.grounding import choose_passages, focus, grounded_prompt, grounding_tokens
from dialogs.knowledge.passages import KnowledgeOptions, Passage
from models import ChatMessage
from models.fake import FakeChatModel

A = Passage("The Aurora-3 warranty is seven years.", "Product sheet", "/p.html", "p", heading="A")
B = Passage("Holidays: 27 days a year. " * 40, "Handbook", "/h.md", "h", page=3)
PROMPT = [ChatMessage("system", "Be nice."), ChatMessage("user", "Hi"),
          ChatMessage("assistant", "Hello"), ChatMessage("user", "Warranty?")]  # fmt: skip


def test_one_passage_goes_before_the_question_as_plain_text() -> None:
    prompt = grounded_prompt(PROMPT, [A])
    assert prompt[:-1] == PROMPT[:-1], "system prompt and history are unchanged"
    assert prompt[-1].content == (
        "Read this text and answer the question with the words of the text.\n\n"
        "Text: The Aurora-3 warranty is seven years.\n\nQuestion: Warranty?"
    )


def test_several_passages_are_numbered_with_title_and_place() -> None:
    content = grounded_prompt(PROMPT, [A, B])[-1].content
    assert "Text [1] (Product sheet, A): The Aurora-3" in content
    assert "Text [2] (Handbook, page 3): Holidays" in content
    assert content.endswith("Question: Warranty?")


def test_no_passages_leave_the_prompt_unchanged() -> None:
    assert grounded_prompt(PROMPT, []) == PROMPT
    assert grounding_tokens(FakeChatModel(), []) == 0


def test_passages_are_chosen_within_the_token_budget() -> None:
    model = FakeChatModel()
    options = KnowledgeOptions(passages=3, tokens=60)
    assert choose_passages(model, [A, B, A], options) == [A], "B alone is over the budget"
    assert choose_passages(model, [B, A], options) == [B], "the best one is always kept"
    assert grounding_tokens(model, [A]) > 10


def test_only_a_follow_up_brings_the_previous_message_into_the_query() -> None:
    history = [ChatMessage("user", "Tell me about the Aurora-3."), ChatMessage("assistant", "ok")]
    assert follow_up_query(history, "and how long is its warranty?") == (
        "Tell me about the Aurora-3.\nand how long is its warranty?"
    )
    assert follow_up_query(history, "What is the capital of France?") is None
    assert follow_up_query([], "and its price?") is None


def test_one_passage_is_focused_on_the_sentences_about_the_question() -> None:
    passage = Passage(
        "Laptops are grey. The Aurora-3 warranties last seven years. Holidays: 27 days. "
        "Parking is free.",
        "Sheet",
        "/s",
        "s",
    )
    content = grounded_prompt([ChatMessage("user", "What is the Aurora-3 warranty?")], [passage])
    text = content[-1].content.split("Text: ")[1].split("\n\n")[0]
    assert text == "The Aurora-3 warranties last seven years.", (
        "sentences sharing no word are left out"
    )


def test_a_word_every_sentence_has_does_not_pick_the_sentences() -> None:
    text = "The Zeta-9 is blue. The Zeta-9 weighs 2 kg. Price: 40 euros per unit. The Zeta-9 glows."
    assert focus(text, "How much does a Zeta-9 unit cost?", 1) == "Price: 40 euros per unit."
