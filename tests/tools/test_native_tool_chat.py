"""Native tool calls through the whole bot in the terminal (`botloom chat`), with a remote
OpenAI-compatible model (a fake vLLM on loopback that answers `tool_calls`): the model's call of
a read-only tool runs it through the MCP runner at once, and the reply answers from its result;
a write still waits for the user's approval; a reply in words calls nothing. A model in the
process that calls tools (a stand-in writing Hermes blocks) chooses them the same way."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.app import Runtime, build_runtime
from bot.console import chat
from models import ChatMessage
from models.fake import FakeChatModel
from tests.tools.support import lines, shop_settings


class FakeVllm:
    """/v1/chat/completions like vLLM with `--enable-auto-tool-choice`: a request with tools is
    answered with a call of lookup_order or cancel_order for an order id in the user's message
    (else words); any other request with a joke when asked for one, else from the prompt's tool
    result."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self.server = TestServer(app, host="127.0.0.1")

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        said = body["messages"][-1]["content"]
        order = next((w.strip("?.") for w in said.split() if w.startswith("A-")), None)
        if body.get("tools") and order:
            name = "cancel_order" if "cancel" in said.lower() else "lookup_order"
            call = {
                "id": "call_1",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps({"order_id": order})},
            }
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
            return completion(message, "tool_calls")
        shipped = "shipped" in json.dumps(body["messages"])  # the tool's result in the prompt
        text = "Here is a joke." if "joke" in said else "It has shipped." if shipped else "Hm."
        return completion({"role": "assistant", "content": text}, "stop")


def completion(message: dict[str, Any], finish: str) -> web.Response:
    choice = {"index": 0, "message": message, "finish_reason": finish}
    return web.json_response({"object": "chat.completion", "choices": [choice]})


@pytest.fixture
async def vllm() -> AsyncIterator[FakeVllm]:
    fake = FakeVllm()
    await fake.server.start_server()
    yield fake
    await fake.server.close()


async def talk(runtime: Runtime, text: str) -> str:
    output = io.StringIO()
    try:
        await chat(runtime, input_stream=io.StringIO(text), output=output)
    finally:
        await runtime.aclose()
    return output.getvalue()


def audited(tmp_path: Path) -> list[tuple[str, dict[str, Any], str, str]]:
    audit = [json.loads(x) for x in lines(tmp_path / "audit.jsonl")]
    return [(e["tool"], e["arguments"], e["approval"], e["outcome"]) for e in audit]


async def test_a_remote_models_tool_calls_run_through_the_runner(
    tmp_path: Path, vllm: FakeVllm
) -> None:
    url = str(vllm.server.make_url("/v1"))
    runtime = build_runtime(shop_settings(tmp_path, model_url=url, model="served-model"))
    transcript = await talk(
        runtime, "Where is my order A-10234?\nPlease cancel order A-20931\ny\nTell me a joke\n"
    )
    assert "It has shipped [1]." in transcript  # answered from the tool's result, cited:
    assert "Sources: [1] Tool: shop/lookup_order" in transcript
    assert "Approve? (y/n" in transcript and "Done. Order A-20931 is cancelled." in transcript
    assert "Here is a joke." in transcript
    assert audited(tmp_path) == [
        ("lookup_order", {"order_id": "A-10234"}, "not needed", "ok"),
        ("cancel_order", {"order_id": "A-20931"}, "approved", "ok"),
    ]
    with_tools = [b for b in vllm.bodies if b.get("tools")]
    assert len(with_tools) == 3 and all(b["tool_choice"] == "auto" for b in with_tools)
    offered = {t["function"]["name"]: t["function"] for t in with_tools[0]["tools"]}
    assert offered["lookup_order"]["parameters"]["properties"]["order_id"]["pattern"]
    assert "cancel_order" in offered


def hermes_lookup(messages: Sequence[ChatMessage], tools: Sequence[dict[str, Any]]) -> str:
    if "A-10234" not in messages[-1].content:
        return "No tool needed."
    call = {"name": "lookup_order", "arguments": {"order_id": "A-10234"}}
    return f"<tool_call>\n{json.dumps(call)}\n</tool_call>"


async def test_a_loaded_models_tool_call_runs_the_read_only_tool(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    model = FakeChatModel(tool_text=hermes_lookup)
    settings = shop_settings(tmp_path, model=str(tiny_model_dir))
    transcript = await talk(build_runtime(settings, model=model), "Is A-10234 on its way?\n")
    assert "Sources: [1] Tool: shop/lookup_order" in transcript
    assert audited(tmp_path) == [("lookup_order", {"order_id": "A-10234"}, "not needed", "ok")]
    assert "lookup_order" in {t["function"]["name"] for t in model.tool_requests[0]}
