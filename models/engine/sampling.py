"""Choose the next token of every row of a batch, each row with its own GenerationParams.

Row by row this is what `generate` does with `sampling_kwargs(params)`: the repetition penalty
over every token the row has seen (prompt and reply), then greedy argmax (temperature 0) or
temperature, top-p and a multinomial draw. Logits are scored in float32, as `generate` does.
The batcher keeps each row's seen tokens as SeenTokens (the ids, gathered and scattered like
generate's RepetitionPenaltyLogitsProcessor), so that no step does work over [rows, vocab] beyond
the logits themselves: finding the seen tokens in a [rows, vocab] mask took a noticeable part of
a step (see bench/results/design-measurements.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import TopPLogitsWarper

from models.api import GenerationParams


class SeenTokens:
    """The distinct tokens each row of a batch contains, as an index tensor [rows, columns]
    padded with each row's first token (a repeat changes nothing: it gets the same score).
    Rows are added, extended by one token each step, reordered and dropped with the batch."""

    def __init__(self) -> None:
        self._ids = torch.zeros(0, 0, dtype=torch.long)
        self._sets: list[set[int]] = []
        self._counts: list[int] = []

    @property
    def rows(self) -> int:
        return len(self._sets)

    def index(self) -> torch.Tensor:
        """[rows, columns] int64: every seen token of each row, padded with repeats."""
        return self._ids[: self.rows, : max(self._counts, default=0)]

    def add_rows(self, rows: Sequence[Sequence[int]]) -> None:
        """Append rows that have seen these tokens (a prompt and its first reply token)."""
        for ids in rows:
            distinct = list(dict.fromkeys(ids)) or [0]
            self._grow(self.rows + 1, len(distinct))
            row = self.rows
            self._ids[row] = distinct[0]
            self._ids[row, : len(distinct)] = torch.tensor(distinct)
            self._sets.append(set(distinct))
            self._counts.append(len(distinct))

    def add(self, tokens: Sequence[int]) -> None:
        """Each row has seen one more token (`tokens[row]`)."""
        for row, token in enumerate(tokens):
            if token not in self._sets[row]:
                self._grow(self.rows, self._counts[row] + 1)
                self._sets[row].add(token)
                self._ids[row, self._counts[row]] = token
                self._counts[row] += 1

    def keep(self, order: Sequence[int]) -> None:
        """Keep these rows (old indices), in this order."""
        if self.rows:
            self._ids = self._ids[torch.tensor(list(order), dtype=torch.long)]
        self._sets = [self._sets[i] for i in order]
        self._counts = [self._counts[i] for i in order]

    def _grow(self, rows: int, columns: int) -> None:
        have_rows, have_columns = self._ids.shape
        if rows <= have_rows and columns <= have_columns:
            return
        # Only a dimension that is too small doubles: doubling both on every admission after
        # `keep` dropped rows doubled the columns each time, so memory grew exponentially.
        rows = have_rows if rows <= have_rows else max(rows, 2 * have_rows)
        columns = have_columns if columns <= have_columns else max(columns, 2 * have_columns, 64)
        grown = torch.zeros(rows, columns, dtype=torch.long)
        grown[:have_rows, :have_columns] = self._ids
        for row, ids in enumerate(self._ids[: self.rows]):  # pad with the row's first token
            grown[row, have_columns:] = ids[0]
        self._ids = grown


def choose_tokens(
    logits: torch.Tensor, params: Sequence[GenerationParams], seen: torch.Tensor | SeenTokens
) -> list[int]:
    """The next token of each row.

    logits: [rows, vocab] scores of the next token; seen: the tokens each row already contains
    (the repetition penalty applies to those, once each), as SeenTokens or as a [rows, vocab]
    bool mask.
    """
    scores = logits.float()
    penalties = [p.repetition_penalty for p in params]
    if isinstance(seen, SeenTokens):
        if any(penalty != 1.0 for penalty in penalties):
            index = seen.index().to(scores.device)
            picked = scores.gather(1, index)
            penalty = torch.tensor(penalties, dtype=scores.dtype)[:, None]
            penalised = torch.where(picked < 0, picked * penalty, picked / penalty)
            scores = scores.clone().scatter_(1, index, penalised)
    elif any(penalty != 1.0 for penalty in penalties):
        # Only the seen tokens change (a few hundred of a row's vocabulary): index them instead
        # of scoring the whole [rows, vocab] twice over, which is slower.
        rows, tokens = seen.nonzero(as_tuple=True)
        picked = scores[rows, tokens]
        penalty = torch.tensor(penalties, device=scores.device, dtype=scores.dtype)[rows]
        scores = scores.clone()
        scores[rows, tokens] = torch.where(picked < 0, picked * penalty, picked / penalty)
    chosen = torch.empty(len(params), dtype=torch.long, device=scores.device)
    for (temperature, top_p), rows in _groups(params).items():
        index = torch.tensor(rows, device=scores.device)
        group = scores if len(rows) == len(params) else scores[index]  # [group rows, vocab]
        if temperature <= 0:
            chosen[index] = group.argmax(dim=-1)
            continue
        group = group / temperature
        if top_p < 1.0:
            group = TopPLogitsWarper(top_p=top_p)(None, group)  # type: ignore[arg-type]
        probs = torch.softmax(group, dim=-1)
        chosen[index] = torch.multinomial(probs, num_samples=1).squeeze(1)
    return [int(token) for token in chosen.tolist()]


def _groups(params: Sequence[GenerationParams]) -> dict[tuple[float, float], list[int]]:
    """Rows that sample alike, keyed by (temperature, top_p); greedy rows share one key."""
    groups: dict[tuple[float, float], list[int]] = {}
    for row, p in enumerate(params):
        key = (0.0, 1.0) if p.temperature <= 0 else (p.temperature, p.top_p)
        groups.setdefault(key, []).append(row)
    return groups


def finite_rows(logits: torch.Tensor) -> tuple[torch.Tensor, set[int]]:
    """(logits, rows whose scores are not all finite); those rows' scores become zeros so that
    the other rows are sampled as usual (the batcher fails the broken ones alone)."""
    bad = (~torch.isfinite(logits).all(dim=-1)).nonzero().flatten().tolist()
    if not bad:
        return logits, set()
    logits = logits.clone()
    logits[bad] = 0
    return logits, set(bad)
