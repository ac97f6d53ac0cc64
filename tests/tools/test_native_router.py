"""NativeToolRouter (dialogs/tools/native.py): the tool comes from the model's own call (a fake
model that writes Hermes `<tool_call>` blocks, read as a real reply is), arguments that do not
fit the tool's schema or the user's words are dropped, a reply in words chooses nothing, and a
model that cannot call tools leaves the turn to the router by meaning."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

from botbuilder.core import ConversationState, MemoryStorage

from dialogs.answer.stages import TurnDraft
from dialogs.answer.tool_stage import ToolStage
from dialogs.tools.api import ToolCall, ToolOutcome, ToolSpec
from dialogs.tools.native import NativeToolRouter
from dialogs.tools.routing import Routed
from models import ChatMessage, ModelOverloaded
from models.fake import FakeChatModel
from tests.tools.support import turn

LOOKUP = ToolSpec(
    "shop",
    "lookup_order",
    "Show an order's status.",
    {
        "type": "object",
        "properties": {"order_id": {"type": "string", "pattern": "^A-[0-9]{5}$"}},
        "required": ["order_id"],
    },
    read_only=True,
    rule="auto",
)
BOOK = ToolSpec(
    "office",
    "book_room",
    "Book a meeting room.",
    {
        "type": "object",
        "properties": {
            "room": {"enum": ["Aurora", "Borealis"], "type": "string"},
            "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
            "minutes": {"type": "integer", "minimum": 15, "maximum": 240},
        },
        "required": ["room", "date"],
    },
    read_only=False,
    rule="ask",
)
TODAY = date(2026, 12, 7)


def hermes(*calls: tuple[str, Any]) -> str:
    return "\n".join(
        f"<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>"
        for name, args in calls
    )


def model_writing(text: str) -> FakeChatModel:
    def write(messages: Sequence[ChatMessage], tools: Sequence[dict[str, Any]]) -> str:
        return text

    return FakeChatModel(tool_text=write)


class RecordingFallback:
    """The router by meaning, as far as these tests need it: records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def choose_in_context(self, text: str, previous: str, tools: Any) -> Routed:
        self.asked.append(text)
        return Routed(tools[0], 0.9)

    async def fill(self, tool: ToolSpec, text: str, known: Any = None) -> Routed:
        self.asked.append(f"fill {text}")
        return Routed(tool, 1.0, {"order_id": "A-10234"})


def router_for(model: FakeChatModel) -> tuple[NativeToolRouter, RecordingFallback]:
    fallback = RecordingFallback()
    return NativeToolRouter(model, fallback, today=lambda: TODAY), fallback


async def test_the_models_call_chooses_the_tool_and_its_arguments() -> None:
    model = model_writing(hermes(("lookup_order", {"order_id": "A-10234"})))
    router, fallback = router_for(model)
    routed = await router.choose_in_context("Where is A-10234?", "hi there", [LOOKUP, BOOK])
    assert (routed.tool, routed.arguments, routed.missing) == (
        LOOKUP,
        {"order_id": "A-10234"},
        [],
    )
    assert routed.filled and fallback.asked == []
    [offered] = model.tool_requests
    assert offered[0] == {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Show an order's status.",
            "parameters": LOOKUP.input_schema,
        },
    }
    [system, user] = model.prompts[0]
    assert "2026-12-07" in system.content and "hi there" in system.content
    assert user == ChatMessage("user", "Where is A-10234?")


async def test_a_reply_in_words_chooses_no_tool() -> None:
    router, _ = router_for(model_writing("Hello! How can I help?"))
    routed = await router.choose_in_context("Hello", "", [LOOKUP])
    assert routed.tool is None


async def test_the_first_call_of_an_offered_tool_counts() -> None:
    text = hermes(("delete_everything", {}), ("lookup_order", {"order_id": "A-10234"}))
    router, _ = router_for(model_writing(text))
    routed = await router.choose_in_context("Where is A-10234?", "", [LOOKUP])
    assert routed.tool == LOOKUP


async def test_arguments_that_do_not_fit_are_dropped_and_required_ones_asked_for() -> None:
    arguments = {
        "room": "Penthouse",  # not one of the choices
        "date": "2026-12-08",  # "tomorrow", written out
        "minutes": "ninety",  # not an integer
        "floor": 3,  # not a parameter
    }
    router, _ = router_for(model_writing(hermes(("book_room", arguments))))
    routed = await router.choose_in_context("Book a room tomorrow", "", [LOOKUP, BOOK])
    assert routed.tool == BOOK
    assert routed.arguments == {"date": "2026-12-08"}
    assert routed.missing == ["room"]


async def test_an_id_the_user_did_not_write_is_never_used() -> None:
    router, _ = router_for(model_writing(hermes(("lookup_order", {"order_id": "A-99999"}))))
    routed = await router.choose_in_context("Where is my order?", "", [LOOKUP])
    assert routed.tool == LOOKUP and routed.arguments == {} and routed.missing == ["order_id"]


async def test_a_model_that_cannot_call_tools_leaves_it_to_the_router_by_meaning() -> None:
    router, fallback = router_for(FakeChatModel())
    routed = await router.choose_in_context("Where is A-10234?", "", [LOOKUP])
    filled = await router.fill(LOOKUP, "Where is A-10234?")
    assert routed == Routed(LOOKUP, 0.9) and filled.arguments == {"order_id": "A-10234"}
    assert fallback.asked == ["Where is A-10234?", "fill Where is A-10234?"]


async def test_a_model_error_chooses_no_tool() -> None:
    model = model_writing(hermes(("lookup_order", {"order_id": "A-10234"})))
    model.fail_after, model.error = 0, ModelOverloaded()
    router, fallback = router_for(model)
    routed = await router.choose_in_context("Where is A-10234?", "", [LOOKUP])
    assert routed.tool is None and fallback.asked == []


async def test_fill_offers_the_one_tool_and_keeps_known_arguments() -> None:
    model = model_writing(hermes(("book_room", {"room": "Aurora"})))
    router, _ = router_for(model)
    routed = await router.fill(BOOK, "Aurora please", {"date": "2026-12-08"})
    assert routed.arguments == {"date": "2026-12-08", "room": "Aurora"} and routed.missing == []
    assert [t["function"]["name"] for t in model.tool_requests[0]] == ["book_room"]


class OneToolRunner:
    """A ToolRunner with one read-only tool that records the calls it runs."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    def tools(self) -> list[ToolSpec]:
        return [LOOKUP]

    def down(self) -> list[str]:
        return []

    async def run(self, turn_context: Any, call: ToolCall) -> ToolOutcome:
        self.calls.append(call)
        return ToolOutcome("ok", "Order A-10234: shipped.")

    async def answer_approval(
        self, turn_context: Any, yes: bool, approval_id: str | None = None
    ) -> ToolOutcome | None:
        return None


async def test_the_tool_stage_runs_the_call_once_without_filling_it_again() -> None:
    model = model_writing(hermes(("lookup_order", {"order_id": "A-10234"})))
    router, _ = router_for(model)
    runner = OneToolRunner()
    stage = ToolStage(runner, router, ConversationState(MemoryStorage()).create_property("w"))
    draft = TurnDraft("Where is A-10234?", history=[], budget_tokens=500)
    await stage.prepare(turn("Where is A-10234?"), draft)
    assert runner.calls == [ToolCall(LOOKUP, {"order_id": "A-10234"})]
    assert "shipped" in draft.passages[0].text
    assert len(model.tool_requests) == 1  # chosen and filled by one call


async def test_a_schema_that_cannot_be_checked_keeps_no_arguments() -> None:
    broken = ToolSpec(
        "shop",
        "lookup_order",
        "Show an order's status.",
        {"type": "object", "properties": {"order_id": {"type": "string", "pattern": "(["}}},
        read_only=True,
        rule="auto",
    )
    router, _ = router_for(model_writing(hermes(("lookup_order", {"order_id": "(["}))))
    routed = await router.choose_in_context("Where is ([?", "", [broken])
    assert routed.tool == broken and routed.arguments == {}
