"""The model server (models/serving/model_server.py): its OpenAI-compatible API, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from models.api import (
    ChatMessage,
    ChatModel,
    GenerationParams,
    ModelError,
    ModelTimeout,
    ModelUnavailable,
    PromptTooLong,
    complete,
)
from models.deferred import DeferredChatModel
from models.fake import FakeChatModel
from models.guard import GuardLimits
from models.serving.model_server import ServerOptions, create_model_server, run_model_server
from models.serving.remote import RemoteChatModel, RemoteOptions
from tests.processes import free_port

HELLO = [{"role": "user", "content": "hello there"}]


class RecordingModel(FakeChatModel):
    """The fake model, also recording each request's params and whether its stream was closed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.params: list[GenerationParams] = []
        self.prompted = asyncio.Event()  # a request has reached the model
        self.closed = asyncio.Event()

    async def stream(  # type: ignore[override]
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[str]:
        self.params.append(params)
        self.prompted.set()
        try:
            async for piece in super().stream(messages, params):
                yield piece
        finally:
            self.closed.set()


async def serve(model: ChatModel, options: ServerOptions | None = None) -> TestClient:
    """The model server on 127.0.0.1 (TestServer cancels handlers of lost connections, as
    `run_model_server` does)."""
    app = create_model_server(model, options)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
def model() -> RecordingModel:
    return RecordingModel()


@pytest.fixture
async def client(model: RecordingModel) -> AsyncIterator[TestClient]:
    client = await serve(model)
    yield client
    await client.close()


def sse_events(body: str) -> list[str]:
    """The data of each event of a server-sent event stream."""
    return [line.removeprefix("data: ") for line in body.split("\n\n") if line.startswith("data: ")]


async def test_health_and_models_name_the_model(client: TestClient) -> None:
    health = await client.get("/health")
    assert health.status == 200 and (await health.json())["model"] == "fake"
    models = await (await client.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == ["fake"]


async def test_a_streamed_reply_is_server_sent_chunks_then_done(client: TestClient) -> None:
    body = {"messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(await response.text())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0]["role"] == "assistant"
    assert "".join(d.get("content", "") for d in deltas) == "fake: hello there"
    assert len(deltas) == 4, "one chunk per piece (3), plus the closing one"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


async def test_a_whole_reply_counts_prompt_tokens_with_the_model(
    client: TestClient, model: RecordingModel
) -> None:
    response = await client.post("/v1/chat/completions", json={"messages": HELLO})
    reply = await response.json()
    assert reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": "fake: hello there"}
    assert reply["choices"][0]["finish_reason"] == "stop"
    prompt = model.count_tokens([ChatMessage("user", "hello there")])
    assert reply["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": 3,
        "total_tokens": prompt + 3,
    }


async def test_a_reply_cut_at_max_tokens_finishes_with_length(client: TestClient) -> None:
    body = {"messages": HELLO, "max_tokens": 2}
    reply = await (await client.post("/v1/chat/completions", json=body)).json()
    assert reply["choices"][0]["message"]["content"] == "fake: hello"
    assert reply["choices"][0]["finish_reason"] == "length"


async def test_openai_fields_become_generation_params(
    client: TestClient, model: RecordingModel
) -> None:
    body = {
        "model": "anything",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "you"}],
            },
        ],
        "max_tokens": 99,
        "max_completion_tokens": 7,
        "temperature": 0,
        "top_p": 0.5,
        "stop": "END",
        "repetition_penalty": 1.3,
        "frequency_penalty": 0.5,
    }
    assert (await client.post("/v1/chat/completions", json=body)).status == 200
    assert model.prompts[-1] == [ChatMessage("system", "be brief"), ChatMessage("user", "hi you")]
    assert model.params[-1] == GenerationParams(
        max_new_tokens=7, temperature=0.0, top_p=0.5, repetition_penalty=1.3, stop=("END",)
    )
    await client.post("/v1/chat/completions", json={"messages": HELLO, "top_p": 0})
    assert (model.params[-1].temperature, model.params[-1].top_p) == (0.0, 1.0), "greedy"


async def test_defaults_fill_what_a_request_leaves_out() -> None:
    model = RecordingModel()
    defaults = GenerationParams(max_new_tokens=12, temperature=0.2, stop=("\n\n",))
    client = await serve(model, ServerOptions(defaults=defaults))
    try:
        await client.post("/v1/chat/completions", json={"messages": HELLO})
    finally:
        await client.close()
    assert model.params == [defaults]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"messages": "hi"}', "messages"),
        (b'{"messages": []}', "messages"),
        (b'{"messages": [{"role": "tool", "content": "x"}]}', "messages[0].role"),
        (b'{"messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
        (b'{"messages": [{"role": "user", "content": "x"}], "n": 2}', "n"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": 3}', "temperature"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stop": [1]}', "stop"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
    ],
)
async def test_bad_requests_get_openai_style_400s(
    client: TestClient, model: RecordingModel, body: bytes, param: str | None
) -> None:
    response = await client.post(
        "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param
    assert model.prompts == []


async def test_an_api_key_guards_the_api_but_not_health() -> None:
    client = await serve(FakeChatModel(), ServerOptions(api_key="s3cret"))
    try:
        assert (await client.get("/health")).status == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = await client.post(
                "/v1/chat/completions", json={"messages": HELLO}, headers=headers
            )
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "invalid_api_key"
        assert (await client.get("/v1/models")).status == 401
        good = {"Authorization": "Bearer s3cret"}
        response = await client.post("/v1/chat/completions", json={"messages": HELLO}, headers=good)
        assert response.status == 200
    finally:
        await client.close()


async def test_an_overloaded_model_answers_429_with_retry_after() -> None:
    limits = GuardLimits(max_pending=0, retry_after_s=2.5)
    client = await serve(FakeChatModel(), ServerOptions(limits=limits))
    try:
        response = await client.post(
            "/v1/chat/completions", json={"messages": HELLO, "stream": True}
        )
        assert response.status == 429
        assert response.headers["Retry-After"] == "3"
        assert (await response.json())["error"]["code"] == "model_overloaded"
    finally:
        await client.close()


async def test_a_loading_model_answers_503_until_it_is_loaded() -> None:
    loaded = threading.Event()

    def loader() -> ChatModel:
        loaded.wait(10)
        return FakeChatModel()

    client = await serve(DeferredChatModel(loader, name="slow"))
    try:
        assert (await client.get("/health")).status == 503
        response = await client.post("/v1/chat/completions", json={"messages": HELLO})
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "model_unavailable"
        loaded.set()
        for _ in range(100):
            if (await client.get("/health")).status == 200:
                break
            await asyncio.sleep(0.02)
        response = await client.post("/v1/chat/completions", json={"messages": HELLO})
        assert (await response.json())["choices"][0]["message"]["content"] == "fake: hello there"
    finally:
        loaded.set()
        await client.close()


async def test_failures_before_the_first_piece_are_statuses_after_it_error_events() -> None:
    before = await serve(FakeChatModel(fail_after=0, error=ModelError("boom")))
    after = await serve(FakeChatModel(fail_after=1, error=ModelTimeout("too slow")))
    try:
        response = await before.post(
            "/v1/chat/completions", json={"messages": HELLO, "stream": True}
        )
        assert response.status == 500
        assert (await response.json())["error"]["code"] == "model_error"
        response = await after.post(
            "/v1/chat/completions", json={"messages": HELLO, "stream": True}
        )
        assert response.status == 200
        events = sse_events(await response.text())
        assert json.loads(events[0])["choices"][0]["delta"]["content"] == "fake:"
        assert json.loads(events[-1])["error"]["code"] == "model_timeout"
        assert "[DONE]" not in events
    finally:
        await before.close()
        await after.close()


@pytest.mark.parametrize("pieces_read", [0, 2])
async def test_a_client_that_leaves_stops_the_generation(pieces_read: int) -> None:
    """Leaving while the model is still silent (0) or in the middle of the reply (2)."""
    model = RecordingModel(delay=0.02, reply=lambda _: " ".join(["word"] * 500))
    model.hang = pieces_read == 0
    client = await serve(model)
    try:
        body = {"messages": HELLO, "stream": True}
        async with aiohttp.ClientSession() as session:
            request = asyncio.create_task(
                session.post(client.make_url("/v1/chat/completions"), json=body)
            )
            if pieces_read:
                response = await request
                for _ in range(pieces_read):
                    assert (await response.content.readuntil(b"\n\n")).startswith(b"data: ")
                response.close()
            else:  # no piece, so no response headers yet: the client gives up waiting for them
                await model.prompted.wait()
                request.cancel()
            await asyncio.wait_for(model.closed.wait(), timeout=2)
        produced = model.pieces_produced
        await asyncio.sleep(0.1)
        assert model.pieces_produced == produced < 50
    finally:
        await client.close()


async def test_run_model_server_stops_a_generation_whose_client_left() -> None:
    model = RecordingModel(hang=True)
    port = free_port()
    server = asyncio.create_task(run_model_server(model, host="127.0.0.1", port=port))
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{url}/health") as health:
                        if health.status == 200:
                            break
                await asyncio.sleep(0.02)
            body = {"messages": HELLO, "stream": True}
            request = asyncio.create_task(session.post(f"{url}/v1/chat/completions", json=body))
            await model.prompted.wait()
            request.cancel()
            await asyncio.wait_for(model.closed.wait(), timeout=2)
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server


async def test_the_remote_backend_talks_to_the_model_server() -> None:
    client = await serve(FakeChatModel(), ServerOptions(api_key="k"))
    remote = RemoteChatModel(RemoteOptions(url=str(client.make_url("/")), api_key="k"))
    try:
        reply = await complete(remote, [ChatMessage("user", "hi there")], GenerationParams())
        assert reply == "fake: hi there"
        assert remote.name == "fake", "discovered from /v1/models"
    finally:
        await remote.close()
        await client.close()


async def test_the_remote_backend_gets_typed_errors_from_the_model_server() -> None:
    client = await serve(FakeChatModel(fail_after=1, error=ModelUnavailable("gone")))
    remote = RemoteChatModel(RemoteOptions(url=str(client.make_url("/v1")), model="fake"))
    pieces: list[str] = []
    try:
        with pytest.raises(ModelUnavailable, match="gone"):
            async for piece in remote.stream([ChatMessage("user", "a b c")], GenerationParams()):
                pieces.append(piece)
        assert pieces == ["fake:"]
    finally:
        await remote.close()
        await client.close()


async def test_a_tiny_hugging_face_model_served(tiny_model_dir: Path, tmp_path: Path) -> None:
    from models.hf import load_chat_model

    model = load_chat_model(str(tiny_model_dir), cache_dir=tmp_path)
    client = await serve(model)  # the server closes the model on cleanup
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello, how are you?"},
    ]
    body = {"messages": messages, "max_tokens": 8, "temperature": 0}
    try:
        whole = await (await client.post("/v1/chat/completions", json=body)).json()
        streamed = await client.post("/v1/chat/completions", json={**body, "stream": True})
        events = sse_events(await streamed.text())
    finally:
        await client.close()
    text = whole["choices"][0]["message"]["content"]
    assert text, "random weights still produce some text"
    prompt = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hello, how are you?")]
    assert whole["usage"]["prompt_tokens"] == model.count_tokens(prompt)
    assert 0 < whole["usage"]["completion_tokens"] <= 9
    assert events[-1] == "[DONE]"
    deltas = [json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1]]
    assert "".join(deltas) == text, "greedy: the streamed reply is the whole reply"


async def test_a_prompt_longer_than_the_context_window_is_a_400_and_a_typed_error(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from models.hf import load_chat_model

    model = load_chat_model(str(tiny_model_dir), cache_dir=tmp_path, context_window=32)
    client = await serve(model)
    remote = RemoteChatModel(RemoteOptions(url=str(client.make_url("/v1")), model="tiny"))
    long = [{"role": "user", "content": "word " * 200}]
    try:
        response = await client.post("/v1/chat/completions", json={"messages": long})
        error = (await response.json())["error"]
        with pytest.raises(PromptTooLong, match="context window holds 32"):
            async for _ in remote.stream([ChatMessage("user", "word " * 200)], GenerationParams()):
                pass
    finally:
        await remote.close()
        await client.close()
    assert response.status == 400
    assert (error["code"], error["type"], error["param"]) == (
        "context_length_exceeded",
        "invalid_request_error",
        "messages",
    )
