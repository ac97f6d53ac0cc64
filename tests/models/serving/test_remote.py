"""RemoteChatModel (models/serving/remote.py) against a fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from models.api import (
    ChatMessage,
    ChatModel,
    GenerationParams,
    ModelError,
    ModelOverloaded,
    ModelTimeout,
    ModelUnavailable,
    PromptTooLong,
    complete,
)
from models.serving.remote import TOKENS_PER_MESSAGE, RemoteChatModel, RemoteOptions
from models.serving.responses import RequestRejected
from tests.processes import free_port

PROMPT = [ChatMessage("system", "Be brief."), ChatMessage("user", "hello")]
PARAMS = GenerationParams(max_new_tokens=50, temperature=0.2, top_p=0.8, stop=("END",))
FAST_RETRIES = {"retry_base_s": 0.01, "read_timeout_s": 2.0}


@dataclass
class Step:
    """What the fake server does with one chat request.

    kind: "stream" (pieces as events, then [DONE] unless `done` is false), "json" (one
    chat.completion), "status" (an error status with `error` as body and `retry_after`),
    "hang" (never answers), "drop" (the first piece, then the connection is cut), "error_event"
    (the first piece, then an error event carrying `error`). "json" with `tool_calls` answers
    them instead of text.
    """

    kind: str = "stream"
    pieces: tuple[str, ...] = ("Hi", " there", "!")
    status: int = 200
    retry_after: str | None = None
    error: dict[str, Any] = field(default_factory=lambda: {"message": "nope", "code": None})
    delay: float = 0.0
    done: bool = True
    tool_calls: list[dict[str, Any]] | None = None  # "json": the message's tool_calls


class FakeOpenAIServer:
    """Serves /v1/models and /v1/chat/completions; each chat request takes the next Step of
    `plan` (the last one repeats). Records request bodies and headers; `finished` counts the
    requests whose handler ended (completed, or cancelled by a client that left)."""

    def __init__(self, plan: list[Step] | None = None, port: int | None = None) -> None:
        self.plan = plan or [Step()]
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.model_lists = 0
        self.finished = 0
        self.left = asyncio.Event()  # a client left in the middle of a stream
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        self.server = TestServer(app, host="127.0.0.1", port=port)

    async def start(self) -> None:
        await self.server.start_server()

    async def close(self) -> None:
        await self.server.close()

    @property
    def url(self) -> str:
        return str(self.server.make_url("/"))

    async def _models(self, request: web.Request) -> web.Response:
        self.model_lists += 1
        return web.json_response({"object": "list", "data": [{"id": "served-model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.json())
        self.headers.append(dict(request.headers))
        step = self.plan[min(len(self.bodies), len(self.plan)) - 1]
        try:
            return await self._answer(request, step)
        except (asyncio.CancelledError, ConnectionResetError):
            self.left.set()
            raise
        finally:
            self.finished += 1

    async def _answer(self, request: web.Request, step: Step) -> web.StreamResponse:
        if step.kind == "status":
            headers = {"Retry-After": step.retry_after} if step.retry_after else {}
            return web.json_response({"error": step.error}, status=step.status, headers=headers)
        if step.kind == "hang":
            await asyncio.Event().wait()
        if step.kind == "json":
            message: dict[str, Any] = {"role": "assistant", "content": "".join(step.pieces)}
            if step.tool_calls is not None:
                message = {"role": "assistant", "content": None, "tool_calls": step.tool_calls}
            return web.json_response({"choices": [{"index": 0, "message": message}]})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b": a comment, then an empty event\n\n")
        for index, piece in enumerate(step.pieces):
            if index and step.kind == "drop":
                assert request.transport is not None
                request.transport.abort()
                return response
            if index and step.kind == "error_event":
                await response.write(f"data: {json.dumps({'error': step.error})}\n\n".encode())
                return response
            await asyncio.sleep(step.delay)
            event = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(b'data: {"choices": [], "usage": {"total_tokens": 3}}\n\n')
        if step.done:
            await response.write(b"data: [DONE]\n\n")
        return response


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    fake = FakeOpenAIServer()
    await fake.start()
    yield fake
    await fake.close()


def remote_for(server: FakeOpenAIServer, **options: Any) -> RemoteChatModel:
    return RemoteChatModel(RemoteOptions(url=server.url, **{**FAST_RETRIES, **options}))


async def pieces_until_error(model: ChatModel) -> tuple[list[str], ModelError]:
    pieces: list[str] = []
    with pytest.raises(ModelError) as raised:
        async for piece in model.stream(PROMPT, PARAMS):
            pieces.append(piece)
    return pieces, raised.value


async def test_streams_the_reply_and_sends_an_openai_request(server: FakeOpenAIServer) -> None:
    model = remote_for(server, api_key="k-123")
    try:
        pieces = [piece async for piece in model.stream(PROMPT, PARAMS)]
        assert pieces == ["Hi", " there", "!"]
        assert model.name == "served-model"
        await complete(model, PROMPT, PARAMS)
    finally:
        await model.close()
    assert server.model_lists == 1, "the model's name is asked once"
    assert server.bodies[0] == {
        "model": "served-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
        ],
        "stream": True,
        "max_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.8,
        "stop": ["END"],
        "repetition_penalty": 1.1,
    }
    assert server.headers[0]["Authorization"] == "Bearer k-123"


async def test_a_configured_model_name_is_sent_without_asking(server: FakeOpenAIServer) -> None:
    model = remote_for(server, model="my-model")
    try:
        await complete(model, PROMPT, GenerationParams(repetition_penalty=1.0))
    finally:
        await model.close()
    assert server.model_lists == 0
    assert server.bodies[0]["model"] == "my-model"
    assert "repetition_penalty" not in server.bodies[0], "neutral: not sent"
    assert "Authorization" not in server.headers[0]


async def test_429_and_503_before_the_reply_are_retried(server: FakeOpenAIServer) -> None:
    server.plan = [Step("status", status=429, retry_after="0"), Step("status", status=503), Step()]
    model = remote_for(server, max_retries=2)
    try:
        assert await complete(model, PROMPT, PARAMS) == "Hi there!"
    finally:
        await model.close()
    assert len(server.bodies) == 3


async def test_persistent_overload_is_model_overloaded_with_retry_after(
    server: FakeOpenAIServer,
) -> None:
    server.plan = [Step("status", status=429, retry_after="0.05")]
    model = remote_for(server, max_retries=2)
    try:
        _, error = await pieces_until_error(model)
    finally:
        await model.close()
    assert isinstance(error, ModelOverloaded) and error.retry_after == 0.05
    assert len(server.bodies) == 3


async def test_a_long_retry_after_is_passed_on_at_once(server: FakeOpenAIServer) -> None:
    server.plan = [Step("status", status=429, retry_after="30")]
    model = remote_for(server, max_retries=5, max_retry_wait_s=5.0)
    started = time.monotonic()
    try:
        _, error = await pieces_until_error(model)
    finally:
        await model.close()
    assert isinstance(error, ModelOverloaded) and error.retry_after == 30
    assert len(server.bodies) == 1 and time.monotonic() - started < 10  # not the 30 s


async def test_persistent_503_is_model_unavailable(server: FakeOpenAIServer) -> None:
    server.plan = [Step("status", status=503, error={"message": "loading", "code": None})]
    model = remote_for(server, max_retries=1)
    try:
        _, error = await pieces_until_error(model)
    finally:
        await model.close()
    assert type(error) is ModelUnavailable and "loading" in str(error)
    assert len(server.bodies) == 2


async def test_an_unreachable_server_is_model_unavailable_after_retries() -> None:
    model = RemoteChatModel(
        RemoteOptions(url=f"http://127.0.0.1:{free_port()}", model="m", **FAST_RETRIES)
    )
    started = time.monotonic()
    try:
        _, error = await pieces_until_error(model)
    finally:
        await model.close()
    assert type(error) is ModelUnavailable and "cannot reach" in str(error)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, RequestRejected),
        (404, RequestRejected),
        (401, ModelUnavailable),
        (500, ModelError),
        (504, ModelTimeout),
    ],
)
async def test_other_refusals_are_not_retried(
    server: FakeOpenAIServer, status: int, expected: type[ModelError]
) -> None:
    server.plan = [Step("status", status=status, error={"message": "bad thing", "code": None})]
    model = remote_for(server, model="m", max_retries=3)
    try:
        _, error = await pieces_until_error(model)
    finally:
        await model.close()
    assert type(error) is expected
    assert len(server.bodies) == 1


async def test_a_connection_cut_mid_reply_is_not_retried(server: FakeOpenAIServer) -> None:
    server.plan = [Step("drop"), Step()]
    model = remote_for(server, max_retries=3)
    try:
        pieces, error = await pieces_until_error(model)
    finally:
        await model.close()
    assert pieces == ["Hi"]
    assert type(error) is ModelUnavailable
    assert len(server.bodies) == 1, "never a second generation after partial output"


async def test_an_error_event_mid_reply_keeps_its_type(server: FakeOpenAIServer) -> None:
    server.plan = [Step("error_event", error={"message": "deadline", "code": "model_timeout"})]
    model = remote_for(server)
    try:
        pieces, error = await pieces_until_error(model)
    finally:
        await model.close()
    assert pieces == ["Hi"] and type(error) is ModelTimeout and "deadline" in str(error)


async def test_a_stream_without_done_is_incomplete(server: FakeOpenAIServer) -> None:
    server.plan = [Step(done=False)]
    model = remote_for(server)
    try:
        pieces, error = await pieces_until_error(model)
    finally:
        await model.close()
    assert pieces == ["Hi", " there", "!"] and type(error) is ModelUnavailable


async def test_a_silent_server_times_out(server: FakeOpenAIServer) -> None:
    server.plan = [Step("hang")]
    model = remote_for(server, read_timeout_s=0.3)
    started = time.monotonic()
    try:
        _, error = await pieces_until_error(model)
    finally:
        await model.close()
    assert type(error) is ModelTimeout
    assert 0.3 <= time.monotonic() - started < 5  # the server hangs for ever
    assert len(server.bodies) == 1


async def test_a_server_silent_between_pieces_times_out(server: FakeOpenAIServer) -> None:
    server.plan = [Step(pieces=("a", "b"), delay=0.6)]
    model = remote_for(server, read_timeout_s=0.3)
    try:
        _, error = await pieces_until_error(model)
    finally:
        await model.close()
    assert type(error) is ModelTimeout


async def test_a_plain_json_completion_is_accepted(server: FakeOpenAIServer) -> None:
    server.plan = [Step("json")]
    model = remote_for(server)
    try:
        assert await complete(model, PROMPT, PARAMS) == "Hi there!"
    finally:
        await model.close()


async def test_leaving_early_closes_the_connection(server: FakeOpenAIServer) -> None:
    server.plan = [Step(pieces=tuple(f" w{i}" for i in range(1000)), delay=0.01)]
    model = remote_for(server)
    try:
        stream = model.stream(PROMPT, PARAMS)
        assert await anext(stream) == " w0"
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.wait_for(server.left.wait(), timeout=2)
    finally:
        await model.close()


async def test_a_restarted_server_on_the_same_port_is_used_again() -> None:
    first = FakeOpenAIServer(port=free_port())
    await first.start()
    port = first.server.port
    model = RemoteChatModel(
        RemoteOptions(url=f"http://127.0.0.1:{port}/v1/", model="m", **FAST_RETRIES)
    )
    try:
        assert await complete(model, PROMPT, PARAMS) == "Hi there!"
        await first.close()
        second = FakeOpenAIServer(port=port)
        await second.start()
        try:
            assert await complete(model, PROMPT, PARAMS) == "Hi there!"
        finally:
            await second.close()
    finally:
        await model.close()


# How servers say that a prompt does not fit (status, body): vLLM (the current error shape and
# the older top-level one), TGI, llama.cpp.
OVERFLOWS = [
    (
        400,
        {
            "error": {
                "message": "This model's maximum context length is 2048 tokens. However, you "
                "requested 2301 tokens (2053 in the messages, 248 in the completion). Please "
                "reduce the length of the messages or completion.",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        },
    ),
    (
        400,
        {
            "object": "error",
            "message": "The decoder prompt (length 2100) is longer than the maximum model length "
            "of 2048. Make sure that `max_model_len` is no smaller than the number of text tokens.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        },
    ),
    (
        422,
        {
            "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 2048. "
            "Given: 2000 `inputs` tokens and 248 `max_new_tokens`",
            "error_type": "validation",
        },
    ),
    (
        400,
        {
            "error": {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
            }
        },
    ),
]


@pytest.mark.parametrize(("status", "body"), OVERFLOWS)
async def test_a_context_overflow_refusal_is_prompt_too_long(
    status: int, body: dict[str, Any]
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", refuse)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    model = RemoteChatModel(RemoteOptions(url=str(server.make_url("/")), model="m"))
    try:
        with pytest.raises(PromptTooLong):
            await complete(model, PROMPT, PARAMS)
    finally:
        await model.close()
        await server.close()


async def test_other_400s_stay_model_errors(server: FakeOpenAIServer) -> None:
    server.plan = [Step("status", status=400, error={"message": "temperature must be >= 0"})]
    model = remote_for(server, model="m")
    try:
        _, error = await pieces_until_error(model)
    finally:
        await model.close()
    assert type(error) is RequestRejected  # a ModelError, not PromptTooLong


@pytest.mark.parametrize(
    "text",
    [
        "x" * 30,
        "1234567890" * 3,
        "你好，我想问一下明天的天气怎么样？" * 2,
        "🙂🎉👍🏽🇩🇪" * 3,
        "Grüße aus Köln, ça va? Ελληνικά και русский текст.",
    ],
)
def test_token_counts_bound_what_a_tokenizer_can_make_of_the_text(text: str) -> None:
    """Every token of a byte-level BPE (and of SentencePiece) covers at least one UTF-8 byte."""
    model = RemoteChatModel(RemoteOptions(url="http://127.0.0.1:1"))
    content_tokens = model.count_tokens([ChatMessage("user", text)]) - model.count_tokens(
        [ChatMessage("user", "")]
    )
    assert content_tokens >= len(text.encode("utf-8"))


def test_tokens_are_estimated_and_the_window_is_configured() -> None:
    model = RemoteChatModel(RemoteOptions(url="http://127.0.0.1:1", context_window=4096))
    assert isinstance(model, ChatModel)
    assert model.context_window == 4096
    assert model.count_tokens([ChatMessage("user", "x" * 30)]) == 30 + TOKENS_PER_MESSAGE
    assert model.count_tokens([]) == 0
    assert "http://127.0.0.1:1/v1" in model.name
    assert "secret" not in repr(RemoteOptions(url="u", api_key="secret"))


def test_with_the_served_models_tokenizer_counts_are_exact(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    model = RemoteChatModel(RemoteOptions(url="http://127.0.0.1:1", tokenizer=str(tiny_model_dir)))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for messages in (PROMPT, [ChatMessage("user", "你好，世界 🙂 " * 5)]):
        conversation = [{"role": m.role, "content": m.content} for m in messages]
        expected = tokenizer.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        assert model.count_tokens(messages) == len(expected)
    with pytest.raises(ValueError, match="cannot load the tokenizer"):
        RemoteChatModel(
            RemoteOptions(url="http://127.0.0.1:1", tokenizer=str(tiny_model_dir / "x"))
        )
