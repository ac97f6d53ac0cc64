"""The bot with a remote model: BOTLOOM_MODEL_URL, and `botloom model-server` as its own process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.model_setup import build_model
from bot.settings import Settings
from dialogs.answer.apologies import TOO_LONG, apology_for
from models.api import ChatMessage, ModelUnavailable
from models.fake import FakeChatModel
from models.serving.remote import RemoteChatModel
from tests.activities import message
from tests.connector import FakeConnector
from tests.models.serving.test_remote import FakeOpenAIServer, Step
from tests.processes import ModelServerProcess

DEADLINE_S = 8.0
UNAVAILABLE = apology_for(ModelUnavailable())


def test_the_model_url_setting_chooses_the_remote_backend() -> None:
    env = {
        "BOTLOOM_MODEL_URL": "http://gpu-host:8000/v1",
        "BOTLOOM_MODEL_API_KEY": "k-secret",
        "BOTLOOM_MODEL_READ_TIMEOUT_S": "12",
        "BOTLOOM_MODEL_MAX_RETRIES": "4",
        "BOTLOOM_CONTEXT_TOKENS": "8192",
    }
    settings = Settings.from_env(env, env_file=None)
    assert "k-secret" not in repr(settings)
    model = build_model(settings)
    assert isinstance(model, RemoteChatModel)
    assert model.options.api_key == "k-secret" and model.options.read_timeout_s == 12
    assert model.options.max_retries == 4 and model.context_window == 8192
    assert model.options.model == "", "the default model name asks the server what it serves"
    named = build_model(
        Settings.from_env({**env, "BOTLOOM_MODEL": "Qwen/Qwen2.5-1.5B-Instruct"}, env_file=None)
    )
    assert isinstance(named, RemoteChatModel) and named.name == "Qwen/Qwen2.5-1.5B-Instruct"
    local = build_model(Settings.from_env({"BOTLOOM_MODEL": "fake"}, env_file=None))
    assert isinstance(local, FakeChatModel)


def test_the_model_tokenizer_setting_makes_remote_token_counts_exact(tiny_model_dir: Path) -> None:
    env = {"BOTLOOM_MODEL_URL": "http://gpu-host:8000/v1"}
    bound = build_model(Settings.from_env(env, env_file=None))
    exact = build_model(
        Settings.from_env({**env, "BOTLOOM_MODEL_TOKENIZER": str(tiny_model_dir)}, env_file=None)
    )
    assert isinstance(exact, RemoteChatModel) and exact.options.tokenizer == str(tiny_model_dir)
    prompt = [ChatMessage("user", "the quick brown fox jumps over the lazy dog " * 10)]
    assert exact.count_tokens(prompt) < bound.count_tokens(prompt)


async def test_answers_through_a_model_server_that_is_killed_and_restarted(
    tmp_path: Path, connector: FakeConnector
) -> None:
    """A reply through `botloom model-server`; kill -9 mid-reply: an apology within the deadline
    + 1 s; the server back on the same port: the next turn is answered."""
    server_env = {"BOTLOOM_MODEL": "fake?delay=0.2", "BOTLOOM_MODEL_API_KEY": "k"}
    server = ModelServerProcess(server_env, tmp_path / "model-server.log")
    settings = Settings(
        storage=f"sqlite:///{tmp_path}/state.db",
        model_url=server.url,
        model_api_key="k",
        generation_timeout_s=DEADLINE_S,
        typing_interval_s=30,
        rate_limit_per_minute=0,
    )
    bot = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await bot.start_server()

    async def ask(text: str) -> tuple[str, float]:
        count = len(connector.messages())
        started = time.monotonic()
        await bot.post("/api/messages", json=message(text, service_url=connector.url))
        replies = await connector.wait_for_messages(count + 1, timeout=DEADLINE_S + 5)
        return replies[-1]["text"], time.monotonic() - started

    try:
        await server.wait_ready(30.0)
        assert (await ask("hello"))[0] == "fake: hello"

        long_question = " ".join(f"w{i}" for i in range(40))  # 41 pieces: about 8 s
        count = len(connector.messages())
        started = time.monotonic()
        await bot.post("/api/messages", json=message(long_question, service_url=connector.url))
        await asyncio.sleep(1.0)  # a few pieces are out
        server.process.kill()
        killed = time.monotonic()
        replies = await connector.wait_for_messages(count + 1, timeout=DEADLINE_S + 1)
        answered = time.monotonic()
        assert replies[-1]["text"] == UNAVAILABLE
        assert answered - started < DEADLINE_S + 1
        assert answered - killed < 1, "the lost connection is noticed at once"

        server.close()
        server = ModelServerProcess(server_env, tmp_path / "model-server.log", port=server.port)
        await server.wait_ready(30.0)
        assert (await ask("back again?"))[0] == "fake: back again?"
    finally:
        await bot.close()
        server.close()


# --- messages that do not fit the remote model's window ----------------------------------------

VLLM_OVERFLOW = {
    "message": "This model's maximum context length is 1024 tokens. However, you requested 1300 "
    "tokens (1052 in the messages, 248 in the completion). Please reduce the length of the "
    "messages or completion.",
    "type": "BadRequestError",
    "param": None,
    "code": 400,
}


@pytest.fixture
async def openai_server() -> AsyncIterator[FakeOpenAIServer]:
    fake = FakeOpenAIServer()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def remote_bot(tmp_path: Path, openai_server: FakeOpenAIServer) -> AsyncIterator[TestClient]:
    settings = Settings(
        storage=f"sqlite:///{tmp_path}/state.db",
        model_url=openai_server.url,
        model="served-model",
        context_tokens=1024,
        typing_interval_s=30,
        rate_limit_per_minute=0,
    )
    bot = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await bot.start_server()
    yield bot
    await bot.close()


async def ask_bot(bot: TestClient, connector: FakeConnector, text: str) -> str:
    count = len(connector.messages())
    await bot.post("/api/messages", json=message(text, service_url=connector.url))
    return (await connector.wait_for_messages(count + 1, timeout=10))[-1]["text"]


def sent_texts(server: FakeOpenAIServer, request: int) -> list[str]:
    return [m["content"] for m in server.bodies[request]["messages"]]


async def test_a_cjk_and_emoji_message_over_the_window_is_refused_before_it_is_sent(
    remote_bot: TestClient, openai_server: FakeOpenAIServer, connector: FakeConnector
) -> None:
    # About 900 tokens for a BPE tokenizer (CJK and emoji take 2-4 tokens a character), far over
    # the 1024-token window less the reply's room, yet only 160 at 3 characters a token.
    long_message = "请帮我把这段话翻译成英文，谢谢！🙂🎉" * 30
    assert await ask_bot(remote_bot, connector, long_message) == TOO_LONG
    assert openai_server.bodies == [], "sent to the model server"
    assert await ask_bot(remote_bot, connector, "hello") == "Hi there!"
    assert not any(long_message in text for text in sent_texts(openai_server, 0))


async def test_a_server_that_says_the_prompt_is_too_long_leaves_the_history_as_it_was(
    remote_bot: TestClient, openai_server: FakeOpenAIServer, connector: FakeConnector
) -> None:
    openai_server.plan = [Step("status", status=400, error=VLLM_OVERFLOW), Step()]
    assert await ask_bot(remote_bot, connector, "a message the server finds too long") == TOO_LONG
    assert await ask_bot(remote_bot, connector, "hello") == "Hi there!"
    assert await ask_bot(remote_bot, connector, "and again") == "Hi there!"
    later = sent_texts(openai_server, 1) + sent_texts(openai_server, 2)
    assert not any("the server finds too long" in text for text in later), "kept in the history"
    assert any("hello" in text for text in sent_texts(openai_server, 2))
