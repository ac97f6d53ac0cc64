"""Tool calls from models in the process (models/tool_calling.py, models/loaded.py): a real tiny
model whose chat template takes `tools` (Hermes-style) gets them in its prompt, a Hermes
`<tool_call>` block survives the real tokenizer's decoding and is read as a call, a plain ChatML
model cannot call tools, and the guard bounds tool calls as it bounds replies."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from models.api import ChatMessage, GenerationParams, ModelShuttingDown, ModelTimeout
from models.chat_template import ChatTemplate
from models.decoding import IncrementalDecoder
from models.deferred import DeferredChatModel
from models.engine.chat_model import BatchedChatModel
from models.engine.request import EngineRequest, EngineStats
from models.fake import FakeChatModel
from models.guard import GuardedChatModel, GuardLimits
from models.hf import HuggingFaceChatModel
from models.tool_calling import ToolReply, ToolsUnsupported, reply_from_text, supports_tools
from models.tool_calls import ParsedCall, openai_tool

LOOKUP = openai_tool(
    "lookup_order",
    "Show an order's status.",
    {"type": "object", "properties": {"order_id": {"type": "string", "pattern": "^A-[0-9]{5}$"}}},
)
ASK = [ChatMessage("system", "Be brief."), ChatMessage("user", "Where is order A-10234?")]
CALL_TEXT = (
    '<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": "A-10234"}}\n</tool_call>'
)
GREEDY = GenerationParams(max_new_tokens=6, temperature=0.0)


@pytest.fixture(scope="module")
def hermes_dir(tiny_tools_model_dir: Path) -> Path:
    return tiny_tools_model_dir


@pytest.fixture(scope="module")
def hermes_tokenizer(hermes_dir: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(hermes_dir)


def test_a_template_that_writes_tools_is_told_from_one_that_does_not(
    hermes_tokenizer: PreTrainedTokenizerBase, tiny_model_dir: Path
) -> None:
    assert ChatTemplate(hermes_tokenizer, "hermes").accepts_tools()
    chatml = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert not ChatTemplate(chatml, "chatml").accepts_tools()


def test_tools_are_rendered_into_the_prompt(hermes_tokenizer: PreTrainedTokenizerBase) -> None:
    template = ChatTemplate(hermes_tokenizer, "hermes")
    with_tools = hermes_tokenizer.decode(template.encode(ASK, [LOOKUP]))
    without = hermes_tokenizer.decode(template.encode(ASK))
    assert '"name": "lookup_order"' in with_tools and "^A-[0-9]{5}$" in with_tools
    assert "<tool_call>" in with_tools and "Be brief." in with_tools
    assert "lookup_order" not in without and "Be brief." in without


def test_a_hermes_call_survives_the_real_tokenizers_decoding(
    hermes_tokenizer: PreTrainedTokenizerBase,
) -> None:
    ids = hermes_tokenizer.encode(CALL_TEXT, add_special_tokens=False)
    assert hermes_tokenizer.convert_tokens_to_ids("<tool_call>") in ids  # one added token
    decoder = IncrementalDecoder(hermes_tokenizer)
    text = "".join(decoder.push(token) for token in ids) + decoder.flush()
    reply = reply_from_text(text, [LOOKUP])
    assert reply == ToolReply((ParsedCall("lookup_order", {"order_id": "A-10234"}),), "")


def test_calls_of_tools_not_offered_and_malformed_calls_are_text() -> None:
    other = CALL_TEXT.replace("lookup_order", "delete_everything")
    assert reply_from_text(other, [LOOKUP]) == ToolReply((), other)
    broken = '<tool_call>{"name": "lookup_order", "arguments": "A-1"}</tool_call>'
    assert reply_from_text(broken, [LOOKUP]).calls == ()
    assert reply_from_text("It has shipped.", [LOOKUP]) == ToolReply((), "It has shipped.")


async def test_the_real_model_is_prompted_with_the_tools(hermes_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(hermes_dir)
    weights = AutoModelForCausalLM.from_pretrained(hermes_dir)
    model = HuggingFaceChatModel(weights, tokenizer, name="hermes")
    prompts: list[torch.Tensor] = []
    hook = weights.register_forward_pre_hook(  # the prompt of the first forward pass
        lambda module, args, kwargs: prompts.append(kwargs["input_ids"]), with_kwargs=True
    )
    try:
        assert supports_tools(model)
        reply = await model.call_tools(ASK, [LOOKUP], GREEDY)
    finally:
        hook.remove()
        model.close()
    assert "lookup_order" in tokenizer.decode(prompts[0][0])
    assert reply.calls == () and reply.text  # random weights write words, not a call


async def test_a_model_without_a_tools_template_cannot_call_tools(tiny_model_dir: Path) -> None:
    model = HuggingFaceChatModel(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        AutoTokenizer.from_pretrained(tiny_model_dir),
        name="chatml",
    )
    try:
        assert not supports_tools(model)
        with pytest.raises(ToolsUnsupported):
            await model.call_tools(ASK, [LOOKUP], GREEDY)
    finally:
        model.close()


class ScriptedBatcher:
    """A batcher that 'generates' the tokens of a fixed text for every request (the engine's
    decoding and the reading of calls are under test, not sampling); records the prompts."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, text: str) -> None:
        self.ids = tokenizer.encode(text, add_special_tokens=False)
        self.stats = EngineStats()
        self.prompts: list[list[int]] = []

    def submit(self, request: EngineRequest) -> None:
        self.prompts.append(request.prompt_ids)
        for token in self.ids:
            request.push(token)
        request.finish()

    def cancel(self, request: EngineRequest) -> None:
        request.cancelled.set()

    def close(self) -> None:
        pass


async def test_the_batching_engine_reads_the_call_it_generates(hermes_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(hermes_dir)
    batcher = ScriptedBatcher(tokenizer, CALL_TEXT)
    model = BatchedChatModel(
        AutoModelForCausalLM.from_pretrained(hermes_dir),
        tokenizer,
        name="hermes",
        batcher=batcher,
    )
    reply = await model.call_tools(ASK, [LOOKUP], GenerationParams(max_new_tokens=100))
    assert reply.calls == (ParsedCall("lookup_order", {"order_id": "A-10234"}),)
    assert "lookup_order" in tokenizer.decode(batcher.prompts[0])


def calls_lookup(messages: Sequence[ChatMessage], tools: Sequence[dict[str, Any]]) -> str:
    return CALL_TEXT


async def test_the_guard_and_a_deferred_model_pass_tool_calls_through() -> None:
    deferred = DeferredChatModel(lambda: FakeChatModel(tool_text=calls_lookup), name="fake")
    guarded = GuardedChatModel(deferred, GuardLimits())
    assert not supports_tools(guarded)  # still loading
    await guarded.wait_ready()
    assert supports_tools(guarded)
    reply = await guarded.call_tools(ASK, [LOOKUP], GREEDY)
    assert reply.calls == (ParsedCall("lookup_order", {"order_id": "A-10234"}),)
    assert guarded.pending == 0


async def test_the_guard_bounds_a_tool_call_and_refuses_a_model_without_tools() -> None:
    hanging = GuardedChatModel(
        FakeChatModel(tool_text=calls_lookup, hang=True), GuardLimits(deadline_s=0.05)
    )
    with pytest.raises(ModelTimeout):
        await asyncio.wait_for(hanging.call_tools(ASK, [LOOKUP], GREEDY), 5)
    assert hanging.pending == 0
    stopping = GuardedChatModel(FakeChatModel(tool_text=calls_lookup, hang=True), GuardLimits())
    call = asyncio.ensure_future(stopping.call_tools(ASK, [LOOKUP], GREEDY))
    await asyncio.sleep(0.01)
    stopping.abort_all()  # shutdown: the call ends at once
    with pytest.raises(ModelShuttingDown):
        await asyncio.wait_for(call, 5)
    plain = GuardedChatModel(FakeChatModel(), GuardLimits())
    assert not supports_tools(plain)
    with pytest.raises(ToolsUnsupported):
        await plain.call_tools(ASK, [LOOKUP], GREEDY)
