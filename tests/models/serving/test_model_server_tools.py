"""`tools` on the model server's OpenAI API (models/serving/model_server.py), over real HTTP on
loopback: a model that writes a Hermes `<tool_call>` block is answered as OpenAI `tool_calls`,
requests the server cannot serve are 400s that say why, botloom's remote client reads the
calls, and a real tiny model is offered tools only where its chat template takes them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from transformers import AutoModelForCausalLM, AutoTokenizer

from models.api import ChatMessage, GenerationParams
from models.fake import FakeChatModel
from models.hf import HuggingFaceChatModel
from models.serving.remote import RemoteChatModel, RemoteOptions
from models.tool_calling import ToolsUnsupported, supports_tools
from models.tool_calls import ParsedCall, openai_tool
from tests.models.serving.test_model_server import serve, sse_events

LOOKUP = openai_tool(
    "lookup_order",
    "Show an order's status.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)
ASK = [{"role": "user", "content": "Where is order A-10234?"}]


def hermes(messages: Sequence[ChatMessage], tools: Sequence[dict[str, Any]]) -> str:
    """Calls lookup_order with the order id of a message that names one; else answers."""
    last = messages[-1].content
    if "A-10234" not in last:
        return "Hello! How can I help?"
    call = {"name": "lookup_order", "arguments": {"order_id": "A-10234"}}
    return f"<tool_call>\n{json.dumps(call)}\n</tool_call>"


@pytest.fixture
def model() -> FakeChatModel:
    return FakeChatModel(tool_text=hermes)


@pytest.fixture
async def client(model: FakeChatModel) -> AsyncIterator[TestClient]:
    client = await serve(model)
    yield client
    await client.close()


async def test_a_call_is_answered_as_openai_tool_calls(
    client: TestClient, model: FakeChatModel
) -> None:
    response = await client.post("/v1/chat/completions", json={"messages": ASK, "tools": [LOOKUP]})
    assert response.status == 200
    body = await response.json()
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["role"] == "assistant" and message["content"] is None
    [call] = message["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "lookup_order"
    assert json.loads(call["function"]["arguments"]) == {"order_id": "A-10234"}
    assert body["usage"]["prompt_tokens"] > 0
    assert model.tool_requests == [[LOOKUP]]  # the model was offered the tools


async def test_a_reply_in_words_is_text(client: TestClient) -> None:
    hello = [{"role": "user", "content": "hi"}]
    response = await client.post(
        "/v1/chat/completions", json={"messages": hello, "tools": [LOOKUP], "tool_choice": "auto"}
    )
    body = await response.json()
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hello! How can I help?",
    }
    assert body["choices"][0]["finish_reason"] == "stop"


async def test_a_streamed_request_gets_the_calls_in_one_delta(client: TestClient) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={
            "messages": ASK,
            "tools": [LOOKUP],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert response.status == 200 and response.content_type == "text/event-stream"
    *events, done = sse_events(await response.text())
    assert done == "[DONE]"
    first, last, counted = [json.loads(event) for event in events]
    delta = first["choices"][0]["delta"]
    [call] = delta["tool_calls"]
    assert call["index"] == 0 and call["type"] == "function" and call["id"].startswith("call_")
    assert json.loads(call["function"]["arguments"]) == {"order_id": "A-10234"}
    assert last["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    assert counted["choices"] == [] and counted["usage"]["total_tokens"] > 0


async def test_a_streamed_reply_in_words_is_content(client: TestClient) -> None:
    hello = [{"role": "user", "content": "hi"}]
    response = await client.post(
        "/v1/chat/completions", json={"messages": hello, "tools": [LOOKUP], "stream": True}
    )
    first, last = [json.loads(event) for event in sse_events(await response.text())[:-1]]
    assert first["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "Hello! How can I help?",
    }
    assert last["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "no spaces"}}]}, "tools[0]"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0]"),
        ({"tools": {"lookup_order": {}}}, "tools"),
        ({"tools": [LOOKUP], "tool_choice": "required"}, "tool_choice"),
    ],
)
async def test_malformed_tools_are_400s(
    client: TestClient, extra: dict[str, Any], param: str
) -> None:
    response = await client.post("/v1/chat/completions", json={"messages": ASK, **extra})
    assert response.status == 400
    assert (await response.json())["error"]["param"] == param


async def test_a_model_that_cannot_call_tools_says_so() -> None:
    client = await serve(FakeChatModel())
    try:
        response = await client.post(
            "/v1/chat/completions", json={"messages": ASK, "tools": [LOOKUP]}
        )
        assert response.status == 400
        error = (await response.json())["error"]
        assert error["code"] == "tools_unsupported" and "cannot call tools" in error["message"]
        unchosen = await client.post(
            "/v1/chat/completions",
            json={"messages": ASK, "tools": [LOOKUP], "tool_choice": "none"},
        )
        assert unchosen.status == 200  # tool_choice "none": an ordinary reply
        body = await unchosen.json()
        assert body["choices"][0]["message"]["content"] == "fake: Where is order A-10234?"
    finally:
        await client.close()


async def test_the_remote_client_reads_the_servers_calls(client: TestClient) -> None:
    remote = RemoteChatModel(RemoteOptions(url=str(client.make_url("/v1"))))
    try:
        reply = await remote.call_tools(
            [ChatMessage("user", "Where is order A-10234?")], [LOOKUP], GenerationParams()
        )
    finally:
        await remote.close()
    assert reply.calls == (ParsedCall("lookup_order", {"order_id": "A-10234"}),)


async def test_the_remote_client_stops_offering_tools_to_a_model_without() -> None:
    client = await serve(FakeChatModel())
    remote = RemoteChatModel(RemoteOptions(url=str(client.make_url("/v1"))))
    try:
        with pytest.raises(ToolsUnsupported):
            await remote.call_tools([ChatMessage("user", "hi")], [LOOKUP], GenerationParams())
        assert not supports_tools(remote)
    finally:
        await remote.close()
        await client.close()


def tiny(folder: Path) -> HuggingFaceChatModel:
    return HuggingFaceChatModel(
        AutoModelForCausalLM.from_pretrained(folder),
        AutoTokenizer.from_pretrained(folder),
        name="tiny",
    )


async def test_a_real_model_is_offered_tools_where_its_template_takes_them(
    tiny_tools_model_dir: Path, tiny_model_dir: Path
) -> None:
    request = {"messages": ASK, "tools": [LOOKUP], "max_tokens": 4, "temperature": 0}
    hermes = await serve(tiny(tiny_tools_model_dir))
    try:
        response = await hermes.post("/v1/chat/completions", json=request)
        assert response.status == 200
        [choice] = (await response.json())["choices"]
        assert choice["finish_reason"] in ("stop", "length")  # random weights write words
        assert choice["message"]["content"]
    finally:
        await hermes.close()
    chatml = await serve(tiny(tiny_model_dir))
    try:
        response = await chatml.post("/v1/chat/completions", json=request)
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "tools_unsupported"
    finally:
        await chatml.close()
