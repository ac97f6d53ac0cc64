"""The batching engine's parts: the prefix cache, per-row token choice, the batch KV layout."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import LlamaConfig, RepetitionPenaltyLogitsProcessor, TopPLogitsWarper

from models.api import GenerationParams
from models.engine.kv import BatchKV, LayerKV, layer_kv
from models.engine.prefix_cache import PrefixCache
from models.engine.sampling import SeenTokens, choose_tokens

CONFIG = LlamaConfig(
    vocab_size=32,
    hidden_size=8,
    intermediate_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
)


def kv_of(tokens: list[int], layers: int = 2) -> LayerKV:
    """A fake KV cache whose every slot holds its token id: [1, 1 head, len, 1 dim] a layer."""
    values = torch.tensor(tokens, dtype=torch.float32).view(1, 1, -1, 1)
    return [(values.clone(), -values.clone()) for _ in range(layers)]


# --- PrefixCache -----------------------------------------------------------------------------


def test_the_longest_stored_prefix_matches_and_the_last_token_is_left_to_compute() -> None:
    cache = PrefixCache(max_tokens=100)
    cache.store([1, 2, 3], kv_of([1, 2, 3]))
    cache.store([1, 2, 9, 9, 9], kv_of([1, 2, 9, 9, 9]))

    n, kv = cache.match([1, 2, 9, 9, 4, 5])
    assert n == 4
    assert kv is not None and kv[0][0].flatten().tolist() == [1, 2, 9, 9]

    assert cache.match([1, 2, 3])[0] == 2  # all of it is stored, but one token must run
    assert cache.match([7, 8]) == (0, None)
    assert cache.match([1]) == (0, None)


def test_an_entry_that_extends_another_replaces_it() -> None:
    cache = PrefixCache(max_tokens=100)
    cache.store([1, 2, 3], kv_of([1, 2, 3]))
    cache.store([1, 2, 3, 4, 5], kv_of([1, 2, 3, 4, 5]))
    assert cache.tokens == 5


def test_the_least_recently_used_entries_go_first() -> None:
    cache = PrefixCache(max_tokens=8)
    cache.store([1, 1, 1], kv_of([1, 1, 1]))
    cache.store([2, 2, 2], kv_of([2, 2, 2]))
    cache.match([1, 1, 1, 5])  # used: now the most recent
    cache.store([3, 3, 3], kv_of([3, 3, 3]))

    assert cache.tokens == 6
    assert cache.match([2, 2, 2, 5]) == (0, None)
    assert cache.match([1, 1, 1, 5])[0] == 3
    assert cache.match([3, 3, 3, 5])[0] == 3


def test_a_zero_budget_keeps_nothing() -> None:
    cache = PrefixCache(max_tokens=0)
    cache.store([1, 2, 3], kv_of([1, 2, 3]))
    assert cache.tokens == 0
    assert cache.match([1, 2, 3, 4]) == (0, None)


# --- choose_tokens ---------------------------------------------------------------------------


def test_the_repetition_penalty_matches_generate_row_by_row() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 32) * 3
    seen_ids = [[1, 2, 3], [4, 4, 5, 30], [0]]
    seen = torch.zeros(3, 32, dtype=torch.bool)
    for row, ids in enumerate(seen_ids):
        seen[row, ids] = True
    penalties = [1.3, 2.0, 1.0]
    params = [GenerationParams(temperature=0.0, repetition_penalty=p) for p in penalties]

    chosen = choose_tokens(logits, params, seen)

    for row, (ids, penalty) in enumerate(zip(seen_ids, penalties, strict=True)):
        scores = logits[row : row + 1]
        if penalty != 1.0:
            scores = RepetitionPenaltyLogitsProcessor(penalty)(torch.tensor([ids]), scores)
        assert chosen[row] == int(scores.argmax())


def test_a_penalised_favourite_loses_to_the_runner_up() -> None:
    logits = torch.tensor([[5.0, 4.0, 0.0]])
    seen = torch.tensor([[True, False, False]])
    assert choose_tokens(
        logits, [GenerationParams(temperature=0.0, repetition_penalty=1.0)], seen
    ) == [0]
    assert choose_tokens(
        logits, [GenerationParams(temperature=0.0, repetition_penalty=2.0)], seen
    ) == [1]


def test_seen_tokens_stay_small_while_rows_come_and_go() -> None:
    seen = SeenTokens()
    for turn in range(40):  # a conversation finishes and another is admitted, 40 times
        seen.add_rows([[turn, turn + 1, turn + 2]])
        seen.add([turn + 3] * seen.rows)
        if seen.rows > 3:
            seen.keep(range(1, seen.rows))
    assert set(seen.index().tolist()[-1]) == {39, 40, 41, 42}
    assert seen._ids.numel() <= 16 * 64, "the buffer doubles only where it is too small"


def test_sampled_rows_draw_only_from_their_nucleus() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 32) * 4
    seen = torch.zeros(2, 32, dtype=torch.bool)
    params = [
        GenerationParams(temperature=0.7, top_p=0.5, repetition_penalty=1.0),
        GenerationParams(temperature=0.0, repetition_penalty=1.0),
    ]
    nucleus = TopPLogitsWarper(top_p=0.5)(None, logits[:1] / 0.7).isfinite()[0]  # type: ignore[arg-type]
    draws = {choose_tokens(logits, params, seen)[0] for _ in range(200)}
    assert draws <= set(nucleus.nonzero().flatten().tolist())
    assert choose_tokens(logits, params, seen)[1] == int(logits[1].argmax())


# --- BatchKV ---------------------------------------------------------------------------------


def test_rows_of_different_lengths_are_left_padded_and_masked() -> None:
    batch = BatchKV(CONFIG, torch.device("cpu"), spare=2)
    batch.add([kv_of([1, 2]), kv_of([3, 4, 5, 6])], [2, 4])

    keys = batch.cache.layers[0].keys
    assert keys.shape == (2, 1, 4, 1)
    assert keys[:, 0, :, 0].tolist() == [[0, 0, 1, 2], [3, 4, 5, 6]]
    assert batch.mask.tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]

    batch.add([kv_of([7, 8, 9, 10, 11])], [5])  # longer than the batch: old rows are re-padded
    assert batch.mask.tolist() == [[0, 0, 0, 1, 1], [0, 1, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert batch.row(0)[1][1].flatten().tolist() == [-1, -2]


def test_decode_steps_write_in_place_and_grow_when_full() -> None:
    batch = BatchKV(CONFIG, torch.device("cpu"), spare=1)
    batch.add([kv_of([1, 2])], [2])
    layer = batch.cache.layers[0]
    buffer = layer.key_buffer
    batch.next_mask()
    layer.update(torch.full((1, 1, 1, 1), 3.0), torch.zeros(1, 1, 1, 1))
    assert layer.key_buffer is buffer  # the first step fits the spare column: written in place
    for token in (4, 5):  # the next step overflows it: the batch moves to larger buffers
        batch.next_mask()
        keys, _ = layer.update(torch.full((1, 1, 1, 1), float(token)), torch.zeros(1, 1, 1, 1))
    assert keys.flatten().tolist() == [1, 2, 3, 4, 5]
    assert batch.cache.get_seq_length() == 5 == batch.width
    assert batch.lengths == [5]
    assert batch.reallocations >= 1


def test_leaving_rows_move_the_last_row_into_their_slots_and_trim_the_padding() -> None:
    batch = BatchKV(CONFIG, torch.device("cpu"))
    batch.add([kv_of([1, 2]), kv_of([3, 4, 5, 6]), kv_of([7, 8, 9]), kv_of([10])], [2, 4, 3, 1])
    buffer = batch.cache.layers[1].key_buffer

    order = batch.remove([1, 0])

    assert order == [2, 3]  # the last row filled slot 1, then the one before it slot 0
    assert batch.cache.layers[1].key_buffer is buffer  # nothing reallocated
    assert batch.mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert batch.cache.layers[1].keys[:, 0, :, 0].tolist() == [[7, 8, 9], [0, 0, 10]]
    assert batch.lengths == [3, 1]
    assert batch.remove([0, 1]) == []
    assert batch.rows == 0 and batch.width == 0


def test_rows_join_freed_slots_and_the_batch_grows_when_full() -> None:
    batch = BatchKV(CONFIG, torch.device("cpu"), spare=4, max_rows=2)
    batch.add([kv_of([1, 2])], [2])
    batch.remove([0])
    batch.add([kv_of([3]), kv_of([4, 5])], [1, 2])  # a fresh batch: its slots start clean
    assert batch.mask.tolist() == [[0, 1], [1, 1]]
    assert batch.cache.layers[0].keys[:, 0, :, 0].tolist() == [[0, 3], [4, 5]]

    batch.add([kv_of([6, 7, 8])], [3])  # a third row: more rows than allocated
    assert batch.rows == 3
    assert batch.mask.tolist() == [[0, 0, 1], [0, 1, 1], [1, 1, 1]]
    assert batch.row(2)[1][0].flatten().tolist() == [6, 7, 8]


@pytest.mark.parametrize("seed", range(4))
def test_joins_steps_and_leaves_in_any_order_keep_every_row_and_zero_padding(seed: int) -> None:
    """Random joins (prompts longer or shorter than the batch), decode steps and leaves, against
    a plain list of each row's tokens: the model must see exactly each row's tokens, right-aligned,
    and zeros (never stale or uninitialised memory) in the padding."""
    rng = random.Random(seed)
    batch = BatchKV(CONFIG, torch.device("cpu"), spare=rng.choice([1, 2, 4, 8]), max_rows=5)
    rows: list[list[int]] = []
    next_id = 1
    for _ in range(150):
        action = rng.random()
        if action < 0.25 and len(rows) < 7:
            joining = [list(range(next_id, next_id + rng.randint(1, 12))) for _ in range(2)]
            joining = joining[: rng.randint(1, 2)]
            next_id += 100
            batch.add([kv_of(r) for r in joining], [len(r) for r in joining])
            rows.extend(joining)
        elif action < 0.4 and rows:
            leaving = rng.sample(range(len(rows)), rng.randint(1, len(rows)))
            order = batch.remove(leaving)
            kept = [rows[i] for i in order]
            assert sorted(order) == sorted(set(range(len(rows))) - set(leaving))
            rows = kept
        elif rows:
            batch.next_mask()
            for layer in batch.cache.layers:
                new = torch.tensor([float(next_id + i) for i in range(len(rows))]).view(-1, 1, 1, 1)
                layer.update(new, -new)
            for i, row in enumerate(rows):
                row.append(next_id + i)
            next_id += 100
        assert batch.rows == len(rows)
        assert batch.lengths == [len(r) for r in rows]
        if not rows:
            continue
        width = max(len(r) for r in rows)
        expected = [[0] * (width - len(r)) + r for r in rows]
        assert batch.width == width
        assert batch.mask.tolist() == [[0] * (width - len(r)) + [1] * len(r) for r in rows]
        for keys, values in (layer_kv(layer) for layer in batch.cache.layers):
            assert keys[:, 0, :, 0].tolist() == expected
            assert values[:, 0, :, 0].tolist() == [[-t for t in r] for r in expected]
        index = rng.randrange(len(rows))
        assert batch.row(index)[1][0].flatten().tolist() == rows[index]


@pytest.mark.parametrize("tokens", [[5], [1, 2, 3]])
def test_a_row_copy_has_no_padding(tokens: list[int]) -> None:
    batch = BatchKV(CONFIG, torch.device("cpu"))
    batch.add([kv_of([9, 9, 9, 9]), kv_of(tokens)], [4, len(tokens)])
    keys, values = batch.row(1)[0]
    assert keys.flatten().tolist() == tokens
    assert values.flatten().tolist() == [-t for t in tokens]
