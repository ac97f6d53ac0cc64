"""Passages and their answer sentences chosen with the help of meaning: every candidate's
sentences are embedded (with the embedding model the index already uses) and scored against the
question.

Meaning adds to the chunk-level choice, it does not replace it. The retriever's choice (its first
candidate, when it passes the chunk thresholds calibrated on tests/knowledge/eval) stays the
passage used unless another candidate's best sentence passes `min_score` and its best sentence's
score plus its chunk's beats the choice's by `promote_margin` (`displaces`): a sentence bar
calibrated on sets written beside the code flatters itself, so it overrides a chunk the old gates
chose only on clear evidence, and adds a passage where they chose none. So a question that
shares no content word with its answer ("can I claim my gym membership?" / "a wellbeing
allowance") still finds it, and a question the old gates answered keeps its passage unless
meaning clearly says otherwise.

The answer sentences are the chosen passage's two best sentences by meaning together with the
sentences the word-overlap choice takes (dialogs/knowledge/grounding.py `focus`), so what the
chunk-level method showed the model is still shown, plus the sentence with the number asked for
where another shares more words with the question. Two, not one: in a colloquial question the
figure asked for is as often in the sentence after the closest one (a rule, then its other case)
as in that sentence; chosen on the development set of files (bench/data/dev/files: the fact in
24 of 36 replies with one, 26 with two). A follow-up ("and how heavy is it?") is
scored with the previous question and answer too.

Sentence vectors are cached in process per chunk (its text is the key: an edited chunk is a new
key), so a chunk's sentences are embedded once per replica; a turn embeds the question and the
sentences of chunks it has not seen.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from dialogs.knowledge.grounding import focus_indices
from dialogs.knowledge.passages import Passage
from dialogs.text import sentences as split_sentences


class Embedder(Protocol):
    """Unit-length vectors for texts, off the event loop (models.embeddings.EmbeddingWorker)."""

    async def embed(self, texts: Sequence[str]) -> np.ndarray: ...


CITED = "cited"  # `found_by` of the previous answer's passages: no search scored them
MEANING_SENTENCES = 2  # the sentences closest to the question in meaning that a focus shows


@dataclass(frozen=True)
class MeaningOptions:
    # Calibrated on tests/knowledge/eval, eval_fresh and tests/knowledge/calibration
    # (bench/knowledge_calibrate.py; docs/knowledge.md): questions the documents answer score
    # above, small talk and questions they do not cover below.
    min_score: float = 0.44  # the best sentence's cosine similarity a passage needs by meaning
    # A passage is used at all only when it answers by meaning (its best sentence) or its whole
    # chunk is close (a shared name can win a sentence from the chunk that answers).
    answered_min_score: float = 0.44
    answered_chunk_score: float = 0.50
    promote_margin: float = 0.05  # by how much its sentence + chunk score must beat the choice's
    section_margin: float = 0.08  # a second passage of the same section this close joins in
    follow_up_weight: float = 0.5  # of the previous question and answer, for a follow-up
    cache_chunks: int = 4096  # chunks whose sentence vectors are kept in process


@dataclass(frozen=True)
class _Scored:
    passage: Passage  # with its scores and focus
    sentences: list[str]
    scores: np.ndarray  # per sentence
    best: float  # its best sentence's


class MeaningRanker:
    """Reranks candidate passages on the similarity of their sentences to the question."""

    def __init__(self, embedder: Embedder, options: MeaningOptions | None = None) -> None:
        self._embedder = embedder
        self.options = options or MeaningOptions()
        self._cache: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()

    async def scored(
        self, question: str, candidates: Sequence[Passage], context: str = ""
    ) -> list[Passage]:
        """Every distinct candidate with its `sentence_score` and `focus` (its best sentences),
        best first. `context` (the previous question and answer of a follow-up) is scored
        together with the question."""
        return [s.passage for s in await self._scored(question, candidates, context)]

    async def rank(
        self,
        question: str,
        candidates: Sequence[Passage],
        context: str = "",
        choice: Passage | None = None,
    ) -> list[Passage]:
        """The relevant candidates, the one to use first. `choice`: the retriever's (its first
        candidate where it passes its thresholds; None where it found nothing); it stays first
        unless the best candidate by meaning passes `min_score` and beats it by
        `promote_margin`. The others follow when they pass `min_score` (by meaning) or, beside a
        choice, the retriever's thresholds. A passage chosen by meaning is joined by the next
        best when that comes from the same section and scores nearly as well."""
        options = self.options
        scored = [
            s
            for s in await self._scored(question, candidates, context)
            if answers(s.passage, question, options)  # the others answer nothing asked
        ]
        if not scored:
            return []
        by_meaning = scored[0]
        kept = next((s for s in scored if choice and _key(s.passage) == _key(choice)), None)
        if kept is not None and not displaces(by_meaning.passage, kept.passage, options):
            rest = [s for s in scored if s is not kept and self._relevant(s)]
            return [kept.passage, *(s.passage for s in rest)]
        # By meaning; where the retriever's choice answers nothing, its other passed candidates
        # that do answer (by a code, or the whole chunk) may stand in, in the same order.
        ranked = [
            s
            for s in scored
            if s.best >= options.min_score or (choice is not None and s.passage.passed)
        ]
        if kept is not None:  # displaced, still relevant: next, then what else passed
            ranked.insert(1, kept)
            ranked += [s for s in scored if s.passage.passed and s not in ranked]
        if len(ranked) < 2:
            return [s.passage for s in ranked]
        best, second = ranked[0], ranked[1]
        if not _same_section(best.passage, second.passage) or (
            best.best - second.best > options.section_margin
        ):
            return [s.passage for s in ranked]
        return [self._joined(best, second, question), *(s.passage for s in ranked[2:])]

    def _relevant(self, scored: _Scored) -> bool:
        return scored.passage.passed or scored.best >= self.options.min_score

    async def _scored(
        self, question: str, candidates: Sequence[Passage], context: str
    ) -> list[_Scored]:
        unique: dict[tuple[str, str, str], Passage] = {}
        for passage in candidates:  # the first of each, passed if any of them is
            first = unique.setdefault(_key(passage), passage)
            if passage.passed and not first.passed:
                unique[_key(passage)] = replace(first, passed=True)
        unique = list(unique.values())
        if not unique:
            return []
        queries = [question, f"{context}\n{question}"] if context else [question]
        vectors = await self._vectors(queries, unique)
        query = vectors[0]
        if context:  # the question and the conversation it continues, together
            weight = self.options.follow_up_weight
            query = (1 - weight) * vectors[0] + weight * vectors[1]
            query = query / max(float(np.linalg.norm(query)), 1e-9)
        scored = [self._score(p, query, question) for p in unique]
        scored.sort(key=lambda s: -s.best)
        return scored

    def _joined(self, best: _Scored, second: _Scored, question: str) -> Passage:
        """One passage of two from the same section: their sentences (without the overlap of
        adjacent chunks) and the best of them as its focus."""
        pairs: dict[str, float] = {}
        for scored in (best, second):
            for sentence, score in zip(scored.sentences, scored.scores, strict=True):
                pairs.setdefault(sentence, float(score))
        sentences, scores = list(pairs), list(pairs.values())
        focus = self._focus(sentences, scores, question, best.sentences)
        return replace(best.passage, text=" ".join(sentences), focus=focus, sentence_vectors=None)

    async def _vectors(self, queries: list[str], passages: list[Passage]) -> np.ndarray:
        """The queries' vectors; the passages' sentence vectors are cached on the way."""
        found = [await self._embedder.embed([query]) for query in queries]  # the search's too
        for passage in passages:  # in use: not the ones evicted below
            if _key(passage) in self._cache:
                self._cache.move_to_end(_key(passage))
        missing = []
        for passage in passages:
            if _key(passage) in self._cache:
                continue
            kept = passage.sentence_vectors  # as the index keeps them: nothing to embed
            if kept is not None and kept.shape == (
                len(_embedded_texts(passage)),
                found[0].shape[-1],
            ):
                self._cache[_key(passage)] = np.array(kept, dtype=np.float32)
            else:
                missing.append(passage)
        texts = [text for passage in missing for text in _embedded_texts(passage)]
        vectors = await self._embedder.embed(texts) if texts else None
        start = 0
        for passage in missing:
            count = len(_embedded_texts(passage))
            assert vectors is not None
            self._cache[_key(passage)] = np.array(vectors[start : start + count], copy=True)
            start += count
        while len(self._cache) > max(self.options.cache_chunks, len(passages)):
            self._cache.popitem(last=False)
        return np.concatenate(found)

    def _focus(
        self,
        sentences: Sequence[str],
        scores: Sequence[float],
        question: str,
        own: Sequence[str],
    ) -> str:
        """The sentences shown to the model, in their order: the two best by meaning, and those the
        word-overlap choice takes of the passage's own sentences `own` (the two sharing most
        words with the question, or all of them when none does: what the chunk-level method
        showed)."""
        if not sentences:
            return ""
        best: set[str] = set()  # distinct: a repeated sentence takes one place
        for index in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
            if len(best) == MEANING_SENTENCES:
                break
            best.add(sentences[int(index)])
        by_words = {own[i] for i in focus_indices(own, question)}
        return " ".join(s for s in sentences if s in best or s in by_words)

    def _score(self, passage: Passage, query: np.ndarray, question: str) -> _Scored:
        key = _key(passage)
        scores = self._cache[key] @ query
        self._cache.move_to_end(key)
        sentences = split_sentences(passage.text)
        best = float(scores.max()) if len(scores) else 0.0
        focus = self._focus(sentences, scores, question, sentences)
        return _Scored(replace(passage, sentence_score=best, focus=focus), sentences, scores, best)


def displaces(candidate: Passage, choice: Passage, options: MeaningOptions) -> bool:
    """Whether `candidate` is clearly better evidence than the retriever's `choice`: its best
    sentence passes `min_score`, and its best sentence's score plus its whole chunk's beats the
    choice's by `promote_margin`. Both scores, since the best sentence of one short line is
    easily won by a shared name ("Kestrelmoor has three values" for "How many employees does
    Kestrelmoor have?") where the chunk that answers scores far higher; a passage the searches
    did not score (the previous answer's) is compared on its sentences alone."""
    sentence = candidate.sentence_score or 0.0
    if sentence < options.min_score:
        return False
    gain = sentence - (choice.sentence_score or 0.0)
    if candidate.found_by != CITED:
        gain += candidate.score - choice.score
    return gain >= options.promote_margin


def answers(passage: Passage, question: str, options: MeaningOptions) -> bool:
    """Whether `passage` may be used at all: its best sentence is close enough to the question
    (`answered_min_score`), or its whole chunk is (`answered_chunk_score`), or it holds an
    identifier the question names ("form RW-7": codes mean little to an embedding model, and
    the words search found them exactly). An on-topic question the documents do not answer finds
    their section by its words, and none of these. A file the user attached is what they most
    likely ask about: its passages always may be used (measured: on the development set of
    files, this bar cost more facts than it saved wrong citations; docs/knowledge.md)."""
    if passage.attached or (passage.sentence_score or 0.0) >= options.answered_min_score:
        return True
    if passage.found_by != CITED and passage.score >= options.answered_chunk_score:
        return True
    codes = identifiers(question)
    if not codes:
        return False
    where = set(identifiers(f"{passage.title} {passage.heading} {passage.text}"))
    return any(code in where for code in codes)


_HYPHENS = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-"})


def identifiers(text: str) -> list[str]:
    """The codes in `text`, lower case: words that start with a letter and hold a digit ("rw-7",
    "inc4711", "v2.1"); not numbers with units or ordinals ("24-hour", "10am", "2nd")."""
    words = re.findall(r"\w(?:[\w.-]*\w)?", text.lower().translate(_HYPHENS))
    return [w for w in words if w[0].isalpha() and any(c.isdigit() for c in w)]


def _key(passage: Passage) -> tuple[str, str, str]:
    return (passage.document_id, passage.heading, passage.text)


def _embedded_texts(passage: Passage) -> list[str]:
    return sentence_texts(passage.text, passage.heading)


def sentence_texts(text: str, heading: str) -> list[str]:
    """What is embedded of a chunk for ranking by meaning (at ranking, or by the index when it
    keeps the vectors): each sentence, with its section's heading (a sentence like "It costs
    64 pounds." says what it is about only with it)."""
    where = f"{heading}: " if heading else ""
    return [f"{where}{sentence}" for sentence in split_sentences(text)]


def _same_section(a: Passage, b: Passage) -> bool:
    return a.document_id == b.document_id and a.heading == b.heading and a.page == b.page
