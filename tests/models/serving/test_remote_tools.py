"""Tool calls through RemoteChatModel (models/serving/remote.py): the request carries the OpenAI
`tools`, the reply's `tool_calls` are read, malformed ones are dropped, and a server that rejects
`tools` is not asked again."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from models.api import ChatMessage, GenerationParams, ModelOverloaded
from models.tool_calling import ToolReply, ToolsUnsupported, supports_tools
from models.tool_calls import ParsedCall, openai_tool
from tests.models.serving.test_remote import FakeOpenAIServer, Step, remote_for

LOOKUP = openai_tool(
    "lookup_order",
    "Show an order's status.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)
ASK = [ChatMessage("user", "Where is order A-10234?")]
PARAMS = GenerationParams(max_new_tokens=64, temperature=0.0)


def call(name: str, arguments: str, ident: str = "call_1") -> dict[str, object]:
    return {"id": ident, "type": "function", "function": {"name": name, "arguments": arguments}}


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    fake = FakeOpenAIServer()
    await fake.start()
    yield fake
    await fake.close()


async def test_the_request_carries_the_tools_and_the_calls_are_read(
    server: FakeOpenAIServer,
) -> None:
    server.plan = [Step("json", tool_calls=[call("lookup_order", '{"order_id": "A-10234"}')])]
    model = remote_for(server, model="served")
    try:
        assert supports_tools(model)
        reply = await model.call_tools(ASK, [LOOKUP], PARAMS)
    finally:
        await model.close()
    assert reply == ToolReply((ParsedCall("lookup_order", {"order_id": "A-10234"}),), "")
    body = server.bodies[0]
    assert body["tools"] == [LOOKUP] and body["tool_choice"] == "auto"
    assert body["stream"] is False and body["messages"][-1]["content"] == ASK[0].content


async def test_malformed_and_unknown_calls_are_dropped(server: FakeOpenAIServer) -> None:
    server.plan = [
        Step("json", tool_calls=[call("lookup_order", "not json"), call("rm_rf", "{}", "c2")]),
        Step("json", tool_calls=[call("lookup_order", '["A-10234"]')]),
        Step("json", pieces=("It has shipped.",)),
    ]
    model = remote_for(server, model="served")
    try:
        replies = [await model.call_tools(ASK, [LOOKUP], PARAMS) for _ in range(3)]
    finally:
        await model.close()
    assert [r.calls for r in replies] == [(), (), ()]
    assert replies[2].text == "It has shipped."


async def test_a_call_written_in_the_text_is_read_where_the_server_parses_none(
    server: FakeOpenAIServer,
) -> None:
    text = json.dumps({"name": "lookup_order", "arguments": {"order_id": "A-10234"}})
    server.plan = [Step("json", pieces=(f"<tool_call>{text}</tool_call>",))]
    model = remote_for(server, model="served")
    try:
        reply = await model.call_tools(ASK, [LOOKUP], PARAMS)
    finally:
        await model.close()
    assert reply.calls == (ParsedCall("lookup_order", {"order_id": "A-10234"}),)


async def test_a_server_that_rejects_tools_is_not_asked_again(server: FakeOpenAIServer) -> None:
    vllm = {"message": '"auto" tool choice requires --enable-auto-tool-choice', "code": 400}
    server.plan = [Step("status", status=400, error=vllm)]
    model = remote_for(server, model="served")
    try:
        with pytest.raises(ToolsUnsupported):
            await model.call_tools(ASK, [LOOKUP], PARAMS)
        assert not supports_tools(model)
        with pytest.raises(ToolsUnsupported):
            await model.call_tools(ASK, [LOOKUP], PARAMS)
    finally:
        await model.close()
    assert len(server.bodies) == 1


async def test_an_overloaded_server_is_not_taken_for_one_without_tools(
    server: FakeOpenAIServer,
) -> None:
    server.plan = [Step("status", status=429, retry_after="0")]
    model = remote_for(server, model="served", max_retries=0)
    try:
        with pytest.raises(ModelOverloaded):
            await model.call_tools(ASK, [LOOKUP], PARAMS)
        assert supports_tools(model)
    finally:
        await model.close()
