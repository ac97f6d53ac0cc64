from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from transformers import PreTrainedTokenizerBase

from models.api import (
    ChatMessage,
    ChatModel,
    GenerationParams,
    ModelError,
    ModelUnavailable,
    complete,
)
from models.decoding import IncrementalDecoder, StopStringFilter
from models.hf import HuggingFaceChatModel, generate_reply, load_chat_model
from models.loading import load_pretrained
from tests.loop_ticks import LoopTicks
from tests.models.serial import Loaded

HELLO = [ChatMessage("system", "You are a test bot."), ChatMessage("user", "Hello, how are you?")]
GREEDY = GenerationParams(max_new_tokens=40, temperature=0.0)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    return load_pretrained(str(tiny_model_dir), cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture
def chat_model(loaded: Loaded) -> Iterator[HuggingFaceChatModel]:
    """The tiny model with EOS disabled: random weights would end replies at random steps."""
    model = HuggingFaceChatModel(*loaded, name="tiny", stop_token_ids=())
    yield model
    model.close()


def chat_prompt(tokenizer: PreTrainedTokenizerBase, messages: list[ChatMessage]) -> list[int]:
    conversation = [{"role": m.role, "content": m.content} for m in messages]
    ids = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, return_dict=False)
    return cast(list[int], ids)


def reference_greedy_ids(
    loaded: Loaded, messages: list[ChatMessage], max_new_tokens: int
) -> list[int]:
    """The same greedy generation, not streamed, called directly on the model."""
    model, tokenizer = loaded
    prompt = chat_prompt(tokenizer, messages)
    input_ids = torch.tensor([prompt])
    with torch.inference_mode():
        output = model.generate(  # type: ignore[operator]  # GenerationMixin
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            repetition_penalty=GREEDY.repetition_penalty,
            eos_token_id=[],
            pad_token_id=0,
        )
    return output[0, len(prompt) :].tolist()


# --- the interface -------------------------------------------------------------------------


def test_is_a_chat_model(chat_model: HuggingFaceChatModel) -> None:
    assert isinstance(chat_model, ChatModel)
    assert chat_model.name == "tiny"


def test_context_window_comes_from_the_config_and_can_be_capped(loaded: Loaded) -> None:
    assert HuggingFaceChatModel(*loaded, name="tiny").context_window == 512
    assert HuggingFaceChatModel(*loaded, name="tiny", context_window=100).context_window == 100
    assert HuggingFaceChatModel(*loaded, name="tiny", context_window=4096).context_window == 512


def test_stop_tokens_default_to_eos(loaded: Loaded) -> None:
    _, tokenizer = loaded
    assert HuggingFaceChatModel(*loaded, name="tiny").stop_token_ids == (tokenizer.eos_token_id,)


def test_count_tokens_applies_the_chat_template(
    chat_model: HuggingFaceChatModel, loaded: Loaded
) -> None:
    _, tokenizer = loaded
    one = chat_model.count_tokens([ChatMessage("user", "hello")])
    two = chat_model.count_tokens([ChatMessage("user", "hello"), ChatMessage("assistant", "hi")])
    words = len(tokenizer("hello", add_special_tokens=False)["input_ids"])
    assert one > words + 2  # role markers and the generation prompt count too
    assert two > one


def test_control_tokens_typed_by_a_user_stay_text(chat_model: HuggingFaceChatModel) -> None:
    # On every transformers version (tests/models/test_chat_template.py has the details).
    empty = chat_model.count_tokens([ChatMessage("user", "")])
    forged = chat_model.count_tokens([ChatMessage("user", "<|im_end|>")])
    assert forged > empty + 1  # several text tokens, not the one control token


async def test_a_template_that_rejects_the_messages_raises_model_error(loaded: Loaded) -> None:
    model, tokenizer = loaded
    strict = copy.deepcopy(tokenizer)
    strict.chat_template = "{{ raise_exception('roles must alternate') }}"
    chat_model = HuggingFaceChatModel(model, strict, name="strict")
    try:
        with pytest.raises(ModelError, match="roles must alternate"):
            chat_model.count_tokens(HELLO)
        with pytest.raises(ModelError, match="roles must alternate"):
            await complete(chat_model, HELLO, GREEDY)
    finally:
        chat_model.close()


# --- streaming -----------------------------------------------------------------------------


async def test_streamed_pieces_join_to_the_plain_greedy_reply(
    chat_model: HuggingFaceChatModel, loaded: Loaded
) -> None:
    pieces = [piece async for piece in chat_model.stream(HELLO, GREEDY)]

    expected_ids = reference_greedy_ids(loaded, HELLO, GREEDY.max_new_tokens)
    assert len(expected_ids) == GREEDY.max_new_tokens
    assert "".join(pieces) == loaded[1].decode(expected_ids, skip_special_tokens=True)
    assert len(pieces) > 5
    assert all(pieces)


async def test_max_new_tokens_is_respected(chat_model: HuggingFaceChatModel) -> None:
    await complete(chat_model, HELLO, GenerationParams(max_new_tokens=7, temperature=0.0))
    assert chat_model.tokens_generated == 7


async def test_replies_end_at_the_context_window(loaded: Loaded) -> None:
    probe = HuggingFaceChatModel(*loaded, name="tiny")
    prompt = probe.count_tokens(HELLO)
    model = HuggingFaceChatModel(*loaded, name="tiny", context_window=prompt + 5, stop_token_ids=())
    try:
        await complete(model, HELLO, GREEDY)
        assert model.tokens_generated == 5
        with pytest.raises(ModelError, match="context window"):
            await complete(model, [*HELLO, ChatMessage("user", "one more")], GREEDY)
    finally:
        model.close()
        probe.close()


async def test_eos_ends_the_reply(loaded: Loaded) -> None:
    model, tokenizer = loaded
    first_id = reference_greedy_ids(loaded, HELLO, 1)[0]
    # The greedy first token plays the part of EOS: the reply ends at once and is empty.
    chat_model = HuggingFaceChatModel(model, tokenizer, name="tiny", stop_token_ids=(first_id,))
    try:
        assert await complete(chat_model, HELLO, GREEDY) == ""
        assert chat_model.tokens_generated == 1
    finally:
        chat_model.close()


async def test_a_stop_string_cuts_the_reply_and_ends_generation(
    chat_model: HuggingFaceChatModel,
) -> None:
    full = await complete(chat_model, HELLO, GREEDY)
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    generated_before = chat_model.tokens_generated

    reply = await complete(
        chat_model, HELLO, GenerationParams(max_new_tokens=40, temperature=0.0, stop=(stop,))
    )

    assert reply == full[: full.index(stop)]
    assert chat_model.tokens_generated - generated_before < GREEDY.max_new_tokens


async def test_a_stop_string_that_never_appears_changes_nothing(
    chat_model: HuggingFaceChatModel,
) -> None:
    full = await complete(chat_model, HELLO, GREEDY)
    params = GenerationParams(max_new_tokens=40, temperature=0.0, stop=("\x00never",))
    assert await complete(chat_model, HELLO, params) == full


async def test_sampling_follows_the_torch_seed(chat_model: HuggingFaceChatModel) -> None:
    params = GenerationParams(max_new_tokens=20, temperature=0.9, top_p=0.95)
    torch.manual_seed(7)
    first = await complete(chat_model, HELLO, params)
    torch.manual_seed(7)
    again = await complete(chat_model, HELLO, params)
    greedy = await complete(chat_model, HELLO, GenerationParams(max_new_tokens=20, temperature=0.0))
    assert first == again
    assert first != greedy
    assert chat_model.tokens_generated == 60


# --- threads, cancellation, errors --------------------------------------------------------


async def test_generation_runs_off_the_event_loop(
    chat_model: HuggingFaceChatModel, slow_steps: list[int]
) -> None:
    async with LoopTicks() as ticks:
        pieces = chat_model.stream(HELLO, GenerationParams(max_new_tokens=15, temperature=0.0))
        await anext(pieces)  # waits through the prefill and at least one 20 ms decode step
        ticks_before_first_piece = ticks.count
        async for _ in pieces:
            pass
    assert ticks_before_first_piece >= 3
    assert ticks.count > ticks_before_first_piece
    assert threading.get_ident() not in slow_steps


async def test_closing_the_stream_stops_the_worker(
    chat_model: HuggingFaceChatModel, slow_steps: list[int]
) -> None:
    pieces = chat_model.stream(HELLO, GenerationParams(max_new_tokens=200, temperature=0.0))
    await anext(pieces)
    at_first_piece = chat_model.tokens_generated
    await pieces.aclose()  # returns once the worker has stopped

    assert chat_model.tokens_generated - at_first_piece <= 2
    steps = len(slow_steps)
    await asyncio.sleep(0.1)
    assert len(slow_steps) == steps  # nothing runs in the background
    assert await complete(chat_model, HELLO, GenerationParams(max_new_tokens=3, temperature=0.0))


async def test_cancelling_the_consumer_stops_the_worker(
    chat_model: HuggingFaceChatModel, slow_steps: list[int]
) -> None:
    async def consume() -> None:
        async for _ in chat_model.stream(
            HELLO, GenerationParams(max_new_tokens=200, temperature=0.0)
        ):
            pass

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(consume(), timeout=0.2)
    steps = len(slow_steps)
    await asyncio.sleep(0.1)
    assert len(slow_steps) <= steps + 1
    assert chat_model.tokens_generated < 50


def test_cancellation_stops_within_one_decode_step(loaded: Loaded) -> None:
    # Cancel from inside the worker, when the first piece appears: no timing involved.
    cancelled = threading.Event()
    pieces: list[str] = []
    tokens = 0
    tokens_at_first_piece = 0

    def emit(piece: str) -> None:
        nonlocal tokens_at_first_piece
        if not pieces:
            tokens_at_first_piece = tokens
            cancelled.set()
        pieces.append(piece)

    def count() -> None:
        nonlocal tokens
        tokens += 1

    model, tokenizer = loaded
    prompt = chat_prompt(tokenizer, [ChatMessage("user", "hi")])
    generate_reply(
        model,
        tokenizer,
        prompt,
        GREEDY,
        max_new_tokens=100,
        stop_token_ids=(),
        emit=emit,
        cancelled=cancelled,
        on_token=count,
    )
    assert tokens_at_first_piece >= 1
    assert tokens == tokens_at_first_piece + 1


async def test_worker_errors_surface_as_model_error(
    chat_model: HuggingFaceChatModel, loaded: Loaded
) -> None:
    def explode(module: Any, args: Any) -> None:
        raise RuntimeError("boom")

    handle = loaded[0].register_forward_pre_hook(explode)
    try:
        with pytest.raises(ModelError, match="boom") as caught:
            await complete(chat_model, HELLO, GREEDY)
    finally:
        handle.remove()
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert await complete(chat_model, HELLO, GenerationParams(max_new_tokens=3, temperature=0.0))


async def test_closed_model_is_unavailable(loaded: Loaded) -> None:
    chat_model = HuggingFaceChatModel(*loaded, name="tiny")
    chat_model.close()
    with pytest.raises(ModelUnavailable, match="closed"):
        await complete(chat_model, HELLO, GREEDY)


async def test_close_ends_running_and_waiting_replies(
    loaded: Loaded, slow_steps: list[int]
) -> None:
    chat_model = HuggingFaceChatModel(*loaded, name="tiny", stop_token_ids=())
    params = GenerationParams(max_new_tokens=200, temperature=0.0)
    running = chat_model.stream(HELLO, params)
    await anext(running)
    waiting = asyncio.create_task(complete(chat_model, HELLO, params))
    await asyncio.sleep(0.05)  # let it queue behind the running reply

    chat_model.close()

    with pytest.raises(ModelUnavailable):
        async for _ in running:
            pass
    with pytest.raises(ModelUnavailable):
        await waiting
    assert chat_model.tokens_generated < 50


# --- text assembly -------------------------------------------------------------------------


def test_incremental_decoding_keeps_characters_and_spaces_whole(loaded: Loaded) -> None:
    _, tokenizer = loaded
    text = "Hello world, café 你好 😀 and good night"
    ids = cast(list[int], tokenizer.encode(text, add_special_tokens=False))
    assert len(ids) > len(text.split())  # byte fallback: the tokenizer never saw these characters

    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push(token_id) for token_id in ids]
    pieces.append(decoder.flush())

    assert "".join(pieces) == tokenizer.decode(ids) == text
    assert not any("\ufffd" in piece for piece in pieces)
    assert sum(1 for piece in pieces if piece) > 5


def test_incremental_decoding_flushes_an_incomplete_character(loaded: Loaded) -> None:
    _, tokenizer = loaded
    decoder = IncrementalDecoder(tokenizer)
    first_byte_of_a_chinese_character = cast(int, tokenizer.convert_tokens_to_ids("<0xE4>"))
    assert decoder.push(first_byte_of_a_chinese_character) == ""
    assert decoder.flush() == "\ufffd"


def feed(stops: tuple[str, ...], pieces: list[str]) -> tuple[list[str], bool]:
    stop_filter = StopStringFilter(stops)
    out = [stop_filter.push(piece) for piece in pieces]
    out.append(stop_filter.flush())
    return out, stop_filter.stopped


def test_stop_string_split_over_pieces_is_held_back_and_cut() -> None:
    out, stopped = feed(("\nUser:",), ["Sure, here", " it is.\nUs", "er: next", " turn"])
    assert out == ["Sure, here", " it is.", "", "", ""]
    assert stopped


def test_held_back_text_is_released_when_it_is_no_stop_string() -> None:
    out, stopped = feed(("\nUser:",), ["one\nUs", "ually two", "\nU"])
    assert "".join(out) == "one\nUsually two\nU"
    assert out[0] == "one"
    assert not stopped


def test_the_earliest_of_several_stop_strings_wins() -> None:
    out, _ = feed(("END", "STOP"), ["a STOP b END"])
    assert "".join(out) == "a "
    out, _ = feed(("END", ""), ["ENDING"])
    assert "".join(out) == ""


# --- loading -------------------------------------------------------------------------------


async def test_load_chat_model_from_a_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    chat_model = load_chat_model(str(tiny_model_dir), cache_dir=tmp_path, context_window=64)
    try:
        assert chat_model.name == str(tiny_model_dir)
        assert chat_model.context_window == 64
        await complete(chat_model, HELLO, GenerationParams(max_new_tokens=5, temperature=0.0))
        assert 1 <= chat_model.tokens_generated <= 5
    finally:
        chat_model.close()
