"""Tool calls read from each model family's format, and never guessed from malformed text."""

from __future__ import annotations

import pytest

from models.tool_calls import ParsedCall, openai_tool, openai_tool_calls, parse_tool_calls

LOOKUP = ParsedCall("lookup_order", {"order_id": "A-10234"})


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": "A-10234"}}\n</tool_call>',
        '{"name": "lookup_order", "parameters": {"order_id": "A-10234"}}',
        '<|python_tag|>{"name": "lookup_order", "parameters": {"order_id": "A-10234"}}',
        '[TOOL_CALLS] [{"name": "lookup_order", "arguments": {"order_id": "A-10234"}}]',
        '[TOOL_CALLS]lookup_order[ARGS]{"order_id": "A-10234"}',
        # Mistral's list once decoding has dropped its special [TOOL_CALLS] token
        '[{"name": "lookup_order", "arguments": {"order_id": "A-10234"}}]',
    ],
)
def test_each_format(text: str) -> None:
    assert parse_tool_calls(text) == [LOOKUP]


def test_several_hermes_calls() -> None:
    text = (
        '<tool_call>{"name": "a", "arguments": {}}</tool_call>\n'
        '<tool_call>{"name": "b", "arguments": {"x": 1}}</tool_call>'
    )
    assert parse_tool_calls(text) == [ParsedCall("a", {}), ParsedCall("b", {"x": 1})]


@pytest.mark.parametrize(
    "text",
    [
        "The order A-10234 has shipped.",
        '<tool_call>{"name": "lookup_order", "arguments": {"order_id": </tool_call>',
        '{"order_id": "A-10234"}',
        "[TOOL_CALLS] not json",
        '[{"name": "lookup_order", "arguments": {}}, {"not": "a call"}]',
    ],
)
def test_no_call_is_guessed(text: str) -> None:
    assert parse_tool_calls(text) == []


def test_openai_wire_format() -> None:
    message = {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup_order", "arguments": '{"order_id": "A-10234"}'},
            }
        ],
    }
    assert openai_tool_calls(message) == [LOOKUP]
    tool = openai_tool("lookup_order", "Show an order.", {"type": "object"})
    assert tool["function"]["parameters"] == {"type": "object"}
