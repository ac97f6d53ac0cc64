"""The chat dialog's AnswerObserver (dialogs/answer/observer.py): a span per answer stage, a
GenAI span per generation (time to first token, input and output tokens), token metrics by model
and tenant, each user's token usage in storage, and knowledge hits and citations.

Message and reply text go into spans only with BOTLOOM_LOG_MESSAGES=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Sequence

from botbuilder.core import TurnContext
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from bot.observability.metrics import BotMetrics
from bot.observability.usage import UsageStore, tenant_of, user_of
from models import ChatMessage, ChatModel, GenerationParams, ModelError


class TelemetryObserver:
    def __init__(
        self,
        model: ChatModel,
        tracer: Tracer,
        metrics: BotMetrics,
        usage: UsageStore,
        *,
        log_messages: bool = False,
    ) -> None:
        self._model = model
        self._tracer = tracer
        self._metrics = metrics
        self._usage = usage
        self._log_messages = log_messages

    @contextlib.contextmanager
    def stage(self, turn_context: TurnContext, name: str) -> Iterator[None]:
        with self._tracer.start_as_current_span(f"botloom.answer.{name}"):
            yield

    def generation(
        self,
        turn_context: TurnContext,
        prompt: Sequence[ChatMessage],
        params: GenerationParams,
        pieces: AsyncIterator[str],
    ) -> AsyncIterator[str]:
        return self._observed(turn_context, prompt, params, pieces)

    async def _observed(
        self,
        turn_context: TurnContext,
        prompt: Sequence[ChatMessage],
        params: GenerationParams,
        pieces: AsyncIterator[str],
    ) -> AsyncIterator[str]:
        """Pass the pieces on; the span is current only while the model is awaited (an async
        generator must not leave its context attached across a yield)."""
        model = self._model.name
        span = self._tracer.start_span(
            f"chat {model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "botloom",
                "gen_ai.request.model": model,
                "gen_ai.request.max_tokens": params.max_new_tokens,
                "gen_ai.request.temperature": params.temperature,
                "gen_ai.request.top_p": params.top_p,
            },
        )
        if self._log_messages:
            span.set_attribute("botloom.prompt.last", prompt[-1].content if prompt else "")
        in_span = trace.set_span_in_context(span)
        started, text, first = time.monotonic(), [], True
        try:
            while True:
                token = otel_context.attach(in_span)
                try:
                    piece = await anext(pieces)
                except StopAsyncIteration:
                    break
                finally:
                    otel_context.detach(token)
                if first:
                    first = False
                    seconds = time.monotonic() - started
                    self._metrics.time_to_first_token.labels(model).observe(seconds)
                    span.set_attribute("botloom.time_to_first_token_s", round(seconds, 4))
                text.append(piece)
                yield piece
        except ModelError as error:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.set_attribute("error.type", type(error).__name__)
            raise
        finally:
            try:
                aclose = getattr(pieces, "aclose", None)
                if aclose is not None:
                    await aclose()  # stops the generation when the reader stops early
                await self._count(turn_context, prompt, "".join(text), span)
            finally:
                span.end()

    async def _count(
        self, turn_context: TurnContext, prompt: Sequence[ChatMessage], reply: str, span: Span
    ) -> None:
        """Tokens in and out (the tokenizer's count, off the event loop), on the span, in the
        metrics and in the user's usage."""
        counted = await asyncio.to_thread(_tokens, self._model, prompt, reply)
        input_tokens, output_tokens = counted
        span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        if self._log_messages:
            span.set_attribute("botloom.reply", reply)
        tenant = tenant_of(turn_context.activity)
        self._metrics.input_tokens.labels(self._model.name, tenant).inc(input_tokens)
        self._metrics.output_tokens.labels(self._model.name, tenant).inc(output_tokens)
        self._usage.add(user_of(turn_context), tenant, input_tokens, output_tokens)

    def answered(self, turn_context: TurnContext, *, passages: int, citations: int) -> None:
        if passages:
            self._metrics.knowledge_hits.inc()
            self._metrics.knowledge_passages.inc(passages)
        self._metrics.citations.inc(citations)
        span = trace.get_current_span()
        span.set_attribute("botloom.knowledge.passages", passages)
        span.set_attribute("botloom.citations", citations)


def _tokens(model: ChatModel, prompt: Sequence[ChatMessage], reply: str) -> tuple[int, int]:
    """The prompt's tokens and the reply's (its assistant message less the template's part)."""
    try:
        empty = model.count_tokens([ChatMessage("assistant", "")])
        replied = model.count_tokens([ChatMessage("assistant", reply)]) - empty if reply else 0
        return model.count_tokens(prompt), max(replied, 0)
    except ModelError:  # a model that cannot count now (not loaded): counted as nothing
        return 0, 0
