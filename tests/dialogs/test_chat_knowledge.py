"""The chat dialog with a retriever: grounded replies with sources, and answers as before when
retrieval fails, finds nothing, or the passages do not fit."""

from __future__ import annotations

from dialogs.chat_dialog import ChatOptions
from dialogs.knowledge.passages import KnowledgeOptions, Passage
from models import GenerationParams
from models.fake import FakeChatModel
from tests.dialogs.conftest import make_harness

PASSAGE = Passage(
    "The Zeta-9 lamp runs for 11 hours.", "Lamp manual", "/m.md", "m", heading="Battery"
)


class FixedRetriever:
    def __init__(self, passages: list[Passage], error: Exception | None = None) -> None:
        self.passages, self.error = passages, error
        self.queries: list[str] = []

    async def search(self, query: str, limit: int) -> list[Passage]:
        self.queries.append(query)
        if self.error is not None:
            raise self.error
        return self.passages[:limit]


async def test_a_grounded_reply_ends_with_its_sources_on_the_emulator() -> None:
    model = FakeChatModel(reply=lambda _: "It runs for 11 hours.")
    harness = make_harness(model, retriever=FixedRetriever([PASSAGE]))
    assert await harness.say("How long does the lamp run?") == [
        "It runs for 11 hours [1].\n\nSources: [1] Lamp manual (Battery)"
    ]
    assert "Text: The Zeta-9 lamp runs for 11 hours." in model.prompts[-1][-1].content
    assert [m["content"] for m in await harness.stored_history()][-1] == "It runs for 11 hours.", (
        "the history keeps the reply without markers or sources"
    )


async def test_a_failing_retriever_means_an_ordinary_answer() -> None:
    retriever = FixedRetriever([PASSAGE], error=RuntimeError("index unreachable"))
    harness = make_harness(FakeChatModel(), retriever=retriever)
    assert await harness.say("hello") == ["fake: hello"]


async def test_nothing_found_means_an_ordinary_answer() -> None:
    model = FakeChatModel()
    harness = make_harness(model, retriever=FixedRetriever([]))
    assert await harness.say("hello") == ["fake: hello"]
    assert model.prompts[-1][-1].content == "hello"


async def test_passages_that_do_not_fit_are_left_out() -> None:
    model = FakeChatModel(context_window=40)
    options = ChatOptions("sys", 40, GenerationParams(max_new_tokens=10))
    long = Passage("word " * 200, "Big", "/b.md", "b")
    harness = make_harness(model, options, FixedRetriever([long]))
    assert await harness.say("a short question") == ["fake: a short question"]
    assert model.prompts[-1][-1].content == "a short question"


async def test_a_reply_that_misquotes_the_passage_quotes_it_instead() -> None:
    model = FakeChatModel(reply=lambda _: "It runs for 4 hours.")
    harness = make_harness(model, retriever=FixedRetriever([PASSAGE]))
    assert await harness.say("How long does the lamp run?") == [
        "The Zeta-9 lamp runs for 11 hours [1].\n\nSources: [1] Lamp manual (Battery)"
    ]
    assert [m["content"] for m in await harness.stored_history()][-1] == (
        "The Zeta-9 lamp runs for 11 hours."
    ), "the history keeps what the user was shown"


async def test_quoting_answers_with_the_passage_own_sentences_without_the_model() -> None:
    model = FakeChatModel(reply=lambda _: "It runs for 4 hours.")
    options = ChatOptions("sys", knowledge=KnowledgeOptions(quote=True))
    passage = Passage(
        "Charge it overnight. The Zeta-9 lamp runs for 11 hours. Its case is blue.",
        "Lamp manual",
        "/m.md",
        "m",
        heading="Battery",
    )
    harness = make_harness(model, options, FixedRetriever([passage]))
    assert await harness.say("How long does the lamp run?") == [
        "The Zeta-9 lamp runs for 11 hours [1].\n\nSources: [1] Lamp manual (Battery)"
    ]
    assert model.prompts == [], "the model is not asked"
    assert [m["content"] for m in await harness.stored_history()][-1] == (
        "The Zeta-9 lamp runs for 11 hours."
    )


async def test_quoting_leaves_a_tool_result_to_the_model() -> None:
    model = FakeChatModel(reply=lambda _: "Order 7 ships on Monday.")
    options = ChatOptions("sys", knowledge=KnowledgeOptions(quote=True))
    result = Passage("Output of the tool shop/order: ships Monday", "Tool: shop/order",
                     "mcp://shop/order", "tool:shop/order")  # fmt: skip
    harness = make_harness(model, options, FixedRetriever([result]))
    [reply] = await harness.say("When does order 7 ship?")
    assert reply.startswith("Order 7 ships on Monday")
    assert len(model.prompts) == 1
