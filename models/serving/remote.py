"""RemoteChatModel: a ChatModel served by any OpenAI-compatible server over HTTP.

botloom's own model server, vLLM, TGI and Ollama all speak ``POST /v1/chat/completions`` with
server-sent events. Replies stream through one pooled aiohttp session. A request that the server
refuses before the reply starts (429, 503, or a connection that cannot be made) is retried a few
times; once any text has reached the caller, a failure is never retried, so a reply is never
repeated or spliced from two generations.

Token counts are exact where the served model's tokenizer is configured (`tokenizer`: its chat
template and tokenizer, counted as a local model counts). Otherwise they are upper bounds:
servers differ in whether and how they expose their tokenizer, and `count_tokens` must answer
without a network round trip (prompts are trimmed on every turn), so it counts one token per
UTF-8 byte of each message (every token of a byte-level BPE vocabulary, and of a SentencePiece
one, covers at least one byte; CJK text and emoji take far more tokens than characters) plus
``TOKENS_PER_MESSAGE`` for the chat template. A prompt trimmed to that count fits the server's
window; English text is over-counted about fourfold, so replies (capped in counted tokens) and
the history kept are shorter than with the tokenizer. Should the server refuse a prompt as too
long anyway (a template that adds more), the refusal is PromptTooLong.

Tool calls (`call_tools`) are one non-streaming request with the OpenAI `tools` field; vLLM
answers `tool_calls` when started with `--enable-auto-tool-choice --tool-call-parser …`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from models.api import (
    ChatMessage,
    GenerationParams,
    ModelError,
    ModelTimeout,
    ModelUnavailable,
    ReadyLifecycle,
)
from models.backoff import backoff_s
from models.serving.openai_wire import request_body
from models.serving.responses import (
    RequestRejected,
    completion_tool_reply,
    refusal,
    reply_pieces,
)
from models.serving.telemetry import trace_headers
from models.serving.tool_wire import tool_request_body
from models.tool_calling import ToolReply, ToolsUnsupported

if TYPE_CHECKING:
    from models.chat_template import ChatTemplate

logger = logging.getLogger(__name__)

# Role markers, the role and separators of common chat templates (ChatML takes 5 a message),
# with room for the generation prompt.
TOKENS_PER_MESSAGE = 8
# Opening a request failed in a way worth another try (the server was reached or is restarting).
_CONNECTION_ERRORS = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ServerDisconnectedError,  # also a pooled connection the server closed meanwhile
    aiohttp.ClientOSError,
)


@dataclass(frozen=True)
class RemoteOptions:
    """Where the server is and how patient to be with it.

    `url`: the server's base URL, with or without the ``/v1`` suffix. `model`: the name sent in
    requests; empty asks the server's ``/v1/models`` once and uses the first model listed.
    `context_window`: prompt plus reply tokens the server's model takes (it cannot be asked).
    `connect_timeout_s`: to open a connection. `read_timeout_s`: the longest silence while
    waiting for the reply to start or for its next piece. `max_retries`: further tries of a
    refused request, `retry_base_s` apart (doubling, with jitter) or as the server's Retry-After
    says; a Retry-After longer than `max_retry_wait_s` is not waited for. `tokenizer`: a folder
    with the served model's tokenizer and chat template (or its Hugging Face name, downloaded
    already): token counts are then exact; without it they are an upper bound.
    """

    url: str
    api_key: str = field(default="", repr=False)
    model: str = ""
    context_window: int = 2048
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    max_retries: int = 2
    retry_base_s: float = 0.25
    max_retry_wait_s: float = 5.0
    tokenizer: str = ""

    def __repr__(self) -> str:
        """Without the API key, and with a password inside the URL masked."""
        parts = urlsplit(self.url)
        url = self.url
        if parts.password:
            url = parts._replace(
                netloc=parts.netloc.replace(f":{parts.password}@", ":***@")
            ).geturl()
        return f"RemoteOptions(url={url!r}, model={self.model!r})"


class RemoteChatModel(ReadyLifecycle):
    """A ChatModel whose replies come from an OpenAI-compatible server.

    `stream` raises ModelOverloaded (429, with the server's Retry-After), ModelUnavailable (503,
    unreachable, refused API key, or the connection lost mid-reply), ModelTimeout (no data for
    `read_timeout_s`, or 504), PromptTooLong (the server says the prompt exceeds its context
    window), and ModelError for anything else. It is ready once constructed (the server is
    reached on the first request); call `close()` (a coroutine) when done. A `tokenizer` that
    cannot be loaded is a ValueError here.
    """

    def __init__(self, options: RemoteOptions) -> None:
        self.options = options
        self._template = _chat_template(options.tokenizer) if options.tokenizer else None
        base = options.url.rstrip("/")
        self._base = base if base.endswith("/v1") else base + "/v1"
        self._model = options.model
        self._session: aiohttp.ClientSession | None = None
        self._tools_refused = False  # the server rejected a request with `tools` once

    @property
    def name(self) -> str:
        return self._model or f"remote model at {self._base}"

    @property
    def context_window(self) -> int:
        return self.options.context_window

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Exact with the configured tokenizer (ModelError if its chat template rejects the
        messages); else an upper bound (see the module's doc): UTF-8 bytes, plus a few per
        message."""
        if self._template is not None:
            return len(self._template.encode(messages))
        return sum(len(m.content.encode("utf-8")) + TOKENS_PER_MESSAGE for m in messages)

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[str]:
        model = self._model or await self._discover_model()
        response = await self._open(request_body(model, messages, params))
        finished = False
        try:
            async for piece in reply_pieces(response):
                yield piece
            finished = True
        except TimeoutError as error:  # aiohttp's read timeout (before its ClientConnectionError)
            raise ModelTimeout(f"no data from the model server for {self._read_s} s") from error
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as error:
            raise ModelUnavailable(f"the model server dropped the reply: {error!r}") from error
        finally:
            if finished:
                response.release()
            else:  # the caller left early, or the stream broke: drop the connection, which
                response.close()  # also tells the server to stop generating

    def supports_tools(self) -> bool:
        """True until the server rejects a request with `tools` (vLLM without
        `--enable-auto-tool-choice`, botloom's model server with a model that cannot call
        tools): it cannot be asked beforehand."""
        return not self._tools_refused

    async def call_tools(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, Any]],
        params: GenerationParams,
    ) -> ToolReply:
        """One non-streaming request with `tools` and `tool_choice: "auto"`; the calls of its
        `message.tool_calls`. Raises ToolsUnsupported when the server rejects the request (and
        from then on), else the errors of `stream`."""
        if self._tools_refused:
            raise ToolsUnsupported(f"the model server at {self._base} takes no tools")
        model = self._model or await self._discover_model()
        try:
            response = await self._open(tool_request_body(model, messages, tools, params))
        except RequestRejected as error:
            self._tools_refused = True
            logger.warning(
                "the model server takes no tools (%s): tools are routed by meaning", error
            )
            raise ToolsUnsupported(str(error)) from error
        try:
            async with response:
                payload = await response.json(content_type=None)
        except TimeoutError as error:
            raise ModelTimeout(f"no data from the model server for {self._read_s} s") from error
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as error:
            raise ModelUnavailable(f"the model server dropped the reply: {error!r}") from error
        except ValueError as error:
            raise ModelError("the model server's reply is not JSON") from error
        return completion_tool_reply(payload, tools)

    async def close(self) -> None:
        """Close the pooled HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def _read_s(self) -> float:
        return self.options.read_timeout_s

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on first use: it needs the running event loop
            timeout = aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.options.connect_timeout_s,
                sock_read=self.options.read_timeout_s,
            )
            headers = {"Accept": "text/event-stream, application/json"}
            if self.options.api_key:
                headers["Authorization"] = f"Bearer {self.options.api_key}"
            self._session = aiohttp.ClientSession(timeout=timeout, headers=headers)
        return self._session

    async def _open(self, body: dict[str, object]) -> aiohttp.ClientResponse:
        """POST the request; retry a refusal; return a 200 response, its body not yet read."""
        url = f"{self._base}/chat/completions"
        for attempt in range(self.options.max_retries + 1):
            retry_after: float | None = None
            try:
                response = await self._client().post(url, json=body, headers=trace_headers({}))
            except _CONNECTION_ERRORS as error:
                failure: ModelError = ModelUnavailable(f"cannot reach the model server: {error!r}")
            except TimeoutError as error:  # the server accepted but said nothing in time
                raise ModelTimeout(
                    f"the model server did not answer in {self._read_s} s"
                ) from error
            else:
                if response.status == 200:
                    return response
                failure, retryable, retry_after = await refusal(response)
                if not retryable:
                    raise failure
            wait = self._retry_wait(attempt, retry_after)
            if attempt == self.options.max_retries or wait is None:
                raise failure
            logger.info(
                "model server refused (%s), retrying in %.2f s", type(failure).__name__, wait
            )
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    def _retry_wait(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds before the next try; None when the server asks for longer than we wait."""
        if retry_after is not None:
            return retry_after if retry_after <= self.options.max_retry_wait_s else None
        return backoff_s(attempt + 1, self.options.retry_base_s, self.options.max_retry_wait_s)

    async def _discover_model(self) -> str:
        """The first model the server lists (vLLM and Ollama need a name; ours takes any)."""
        try:
            async with self._client().get(f"{self._base}/models") as response:
                if response.status != 200:
                    failure, _, _ = await refusal(response)
                    raise failure
                listed = (await response.json(content_type=None)).get("data") or []
                self._model = str(listed[0]["id"])
        except (
            aiohttp.ClientError,
            TimeoutError,
            ValueError,
            LookupError,
            AttributeError,
        ) as error:
            raise ModelUnavailable(f"cannot list the model server's models: {error!r}") from error
        logger.info("model server at %s serves %s", self._base, self._model)
        return self._model


def _chat_template(source: str) -> ChatTemplate:
    """The served model's chat template and tokenizer, from a folder or a downloaded name."""
    # Imported only here: transformers is slow to import, and most remote setups count without.
    from transformers import AutoTokenizer

    from models.chat_template import ChatTemplate

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot load the tokenizer {source!r}: {error}") from error
    if not tokenizer.chat_template:
        raise ValueError(f"the tokenizer {source!r} has no chat template")
    return ChatTemplate(tokenizer, source)
