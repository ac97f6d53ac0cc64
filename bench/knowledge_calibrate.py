"""Calibrating the meaning-based passage ranking (dialogs/knowledge/meaning.py), and its cost.

    .venv/bin/python bench/knowledge_calibrate.py [--latency]

Indexes tests/knowledge/eval/docs and eval_fresh/docs with the default embedding model into a
fresh SQLite file, then for every question of tests/knowledge/eval, eval_fresh and calibration
(never the blind set) prints the passage the dialog uses (the retriever's choice unless one by
meaning displaces it): its document, its best sentence's score, the whole chunk's, and whether a
fact of the question is in the sentences shown to the model. Follow-ups are scored as the dialog
scores them (after their question, with its passage as the previous answer's citation). Then,
for sentence bars and margins over the choice (inf: the choice alone): questions answered from
the right document, with the fact shown, and uncovered or off-topic questions that get passages.
No chat model runs: retrieval and ranking only.

`--latency`: the extra time per turn of the reranking (the sentence scoring; the query's second
embedding; the sentence embedding of chunks not seen before where the index did not keep their
vectors) over the searches alone, p50/p95 in ms, every question once with a cold cache (with and
without the kept vectors) and once warm. Saved to bench/results/knowledge-meaning.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.knowledge.retriever import HybridRetriever
from bot.knowledge.setup import build_knowledge
from bot.settings import Settings
from dialogs.answer.knowledge_stage import CANDIDATES, follow_up_context, follow_up_query
from dialogs.knowledge.meaning import CITED, MeaningOptions, MeaningRanker, answers, displaces
from dialogs.knowledge.passages import Passage
from models import ChatMessage
from models.embeddings import EmbeddingWorker

ROOT = Path(__file__).resolve().parents[1]
KNOWLEDGE = ROOT / "tests" / "knowledge"
SETS = ("eval", "eval_fresh", "calibration")
# Each corpus indexed alone: its documents, then its question sets' folders.
CORPORA = {
    "beside": (
        [KNOWLEDGE / "eval" / "docs", KNOWLEDGE / "eval_fresh" / "docs"],
        [KNOWLEDGE / name for name in SETS],
    ),
    "external": (
        [KNOWLEDGE / "calibration_external" / "docs"],
        [KNOWLEDGE / "calibration_external"],
    ),
    "files-dev": (
        [ROOT / "bench" / "data" / "dev" / "files" / "docs"],
        [ROOT / "bench" / "data" / "dev" / "files"],
    ),
}
RESULTS = Path(__file__).resolve().parent / "results" / "knowledge-meaning.json"


def load(folder: str | Path, file: str) -> list[dict]:
    path = KNOWLEDGE / folder / file
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def best(
    retriever: HybridRetriever,
    ranker: MeaningRanker,
    text: str,
    history: list[ChatMessage],
    previous: list[Passage],
) -> tuple[list[Passage], list[Passage]]:
    """The candidates as the dialog scores them, best by meaning first (`find` without
    thresholds), and the retriever's choice among them followed by its other passed candidates
    in its order (what stands in for a choice that answers nothing; [] where it has none)."""
    follow_up = follow_up_query(history, text)
    queries = [text] if follow_up is None else [text, follow_up]
    searches = [await retriever.search(q, CANDIDATES) for q in queries]
    choice = next((f[0] for f in searches if f and f[0].passed), None)
    candidates = [p for search in searches for p in search]
    previous = [dataclasses.replace(p, passed=False, found_by=CITED) for p in previous]
    context = follow_up_context(history, text)
    scored = await ranker.scored(text, [*candidates, *previous], context)
    if choice is None:
        return scored, []
    by_key = {(p.document_id, p.heading, p.text): p for p in scored}  # with sentence scores
    ordered = [choice, *(c for c in candidates if c.passed and c is not choice)]
    return scored, [by_key[(c.document_id, c.heading, c.text)] for c in ordered]


def used(
    scored: list[Passage], choices: list[Passage], options: MeaningOptions, question: str
) -> Passage | None:
    """The passage the dialog uses with these options (MeaningRanker.rank, without joining)."""
    scored = [p for p in scored if answers(p, question, options)]
    choice = choices[0] if choices and answers(choices[0], question, options) else None
    top = next(
        (
            p
            for p in scored
            if (p.sentence_score or 0.0) >= options.min_score or (choices and p.passed)
        ),
        None,
    )
    if choice is None or (top is not None and displaces(top, choice, options)):
        return top
    return choice


def row(name: str, kind: str, item: dict | None, top: Passage | None, question: str) -> dict:
    shown = (top.focus if top else "").lower()
    return {
        "set": name,
        "kind": kind,
        "covered": item is not None,
        "right": bool(item and top) and Path(top.source).name == item["document"],
        "fact": bool(item) and any(f.lower() in shown for f in item["facts"]),
        "sentence": (top.sentence_score or 0.0) if top else 0.0,
        "chunk": top.score if top else 0.0,
        "question": question,
        "focus": top.focus if top else "",
    }


async def cases_of(
    corpus: str, folders: list[Path], retriever: HybridRetriever, ranker: MeaningRanker
) -> list[tuple]:
    """(corpus, set, kind, item or None for uncovered, question, scored, choice) for every
    question of `folders`, a follow-up asked after its question as the dialog asks it."""
    options = ranker.options
    cases = []
    for folder in folders:
        name = Path(folder).name
        questions = load(folder, "questions.jsonl")
        by_id = {q["id"]: q for q in questions if "id" in q}
        for item in questions:
            history: list[ChatMessage] = []
            previous: list[Passage] = []
            if item.get("follows"):
                first = by_id[item["follows"]]
                scored, choice = await best(retriever, ranker, first["question"], [], [])
                top = used(scored, choice, options, first["question"])
                previous = [top] if top else []
                answer = top.focus if top else ""
                history = [ChatMessage("user", first["question"]), ChatMessage("assistant", answer)]
            scored, choice = await best(retriever, ranker, item["question"], history, previous)
            kind = item.get("kind", "plain")
            cases.append((corpus, name, kind, item, item["question"], scored, choice))
        for item in load(folder, "off_topic.jsonl") + load(folder, "uncovered.jsonl"):
            scored, choice = await best(retriever, ranker, item["question"], [], [])
            cases.append((corpus, name, "uncovered", None, item["question"], scored, choice))
    return cases


def report(cases: list[tuple], options: MeaningOptions) -> None:
    def rows(bar: float, margin: float, answered: float, chunk: float = 2.0) -> list[dict]:
        tried = dataclasses.replace(
            options,
            min_score=bar,
            promote_margin=margin,
            answered_min_score=answered,
            answered_chunk_score=chunk,
        )
        return [
            row(f"{corpus}/{name}", kind, item, used(scored, choice, tried, question), question)
            for corpus, name, kind, item, question, scored, choice in cases
        ]

    chosen = rows(options.min_score, options.promote_margin, 0.0)
    for r in chosen:
        mark = ("ok " if r["right"] else "DOC") if r["covered"] else "-- "
        fact = ("fact" if r["fact"] else "    ") if r["covered"] else "    "
        print(
            f"{r['set']:22} {r['kind']:10} {mark} {fact} s={r['sentence']:.3f} "
            f"c={r['chunk']:.3f} {r['question'][:60]!r} -> {r['focus'][:70]!r}"
        )
    corpora = sorted({r["set"].split("/")[0] for r in chosen})
    print(
        "\nanswered bars (the used passage's best sentence, or its whole chunk; 2.00: no chunk "
        "bar): per corpus right, fact, uncovered-with-passage"
    )
    bars = [(a, 2.0) for a in (0.0, 0.40, 0.42, 0.44, 0.46, 0.48, 0.50, 0.52, 0.55)]
    bars += [(a, c) for a in (0.44, 0.46, 0.48, 0.50) for c in (0.45, 0.50, 0.55, 0.60)]
    for answered, chunk in bars:
        rs = rows(options.min_score, options.promote_margin, answered, chunk)
        cells = []
        for corpus in corpora:
            mine = [r for r in rs if r["set"].startswith(corpus + "/")]
            covered = [r for r in mine if r["covered"]]
            noise = sum(1 for r in mine if not r["covered"] and r["focus"])
            cells.append(
                f"{corpus}: {sum(r['right'] for r in covered):3d}/{len(covered)} "
                f"{sum(r['fact'] for r in covered):3d}/{len(covered)} "
                f"{noise:2d}/{len(mine) - len(covered)}"
            )
        print(f"{answered:.2f} {chunk:.2f}  " + "   ".join(cells))


async def latency(
    retriever: HybridRetriever, ranker: MeaningRanker, embedder: EmbeddingWorker
) -> dict:
    """Per question, one after the other: the searches (as the turn already does them), then the
    reranking of their candidates by two rankers with empty caches, interleaved: one given the
    sentence vectors the index keeps (`rerank_cold_kept`), one without them, so it embeds the
    sentences of every chunk it has not seen (`rerank_cold_embedding`: before the index kept
    them); then every question again, warm. On a shared machine the absolute times vary:
    compare the columns of one run."""
    questions = [q["question"] for name in SETS for q in load(name, "questions.jsonl")]
    embedding = MeaningRanker(embedder, ranker.options)
    timings: dict[str, list[float]] = {
        "search": [],
        "rerank_cold_embedding": [],
        "rerank_cold_kept": [],
        "rerank_warm": [],
    }
    for warm in (False, True):
        for text in questions:
            started = time.perf_counter()
            candidates = await retriever.search(text, CANDIDATES)
            searched = time.perf_counter()
            timings["search"].append(1000 * (searched - started))
            if warm:
                await ranker.rank(text, candidates)
                timings["rerank_warm"].append(1000 * (time.perf_counter() - searched))
                continue
            stripped = [dataclasses.replace(p, sentence_vectors=None) for p in candidates]
            started = time.perf_counter()
            await embedding.rank(text, stripped)
            timings["rerank_cold_embedding"].append(1000 * (time.perf_counter() - started))
            started = time.perf_counter()
            await ranker.rank(text, candidates)
            timings["rerank_cold_kept"].append(1000 * (time.perf_counter() - started))

    def percentiles(values: list[float]) -> dict:
        ordered = sorted(values)
        return {
            "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[round(0.95 * (len(ordered) - 1))], 1),
        }

    result = {"questions": len(questions), **{k: percentiles(v) for k, v in timings.items()}}
    result["rerank_warm_over_search_p95"] = round(
        result["rerank_warm"]["p95_ms"] / result["search"]["p95_ms"], 2
    )
    result["rerank_cold_embedding_over_kept_p95"] = round(
        result["rerank_cold_embedding"]["p95_ms"] / result["rerank_cold_kept"]["p95_ms"], 1
    )
    print(json.dumps(result, indent=2))
    return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", action="store_true", help="measure the reranking's cost")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="botloom-calibrate-"))
    cases = []
    for corpus, (docs, folders) in CORPORA.items():
        if args.latency and corpus != "beside":
            continue
        if not all(folder.exists() for folder in docs):
            print(f"[{corpus}] skipped: {docs[0]} is missing")
            continue
        settings = dataclasses.replace(
            Settings.from_env(env_file=None),
            storage=f"sqlite:///{state}/{corpus}.db",
            log_level="WARNING",
        )
        knowledge = build_knowledge(settings)
        try:
            await knowledge.store.open()
            await knowledge.ingestion(progress=lambda line: None).add(docs)
            if args.latency:
                await knowledge.embedder.embed(["warm up"])
                result = await latency(knowledge.retriever, knowledge.ranker, knowledge.embedder)
                RESULTS.write_text(json.dumps(result, indent=1) + "\n")
                return
            cases += await cases_of(corpus, folders, knowledge.retriever, knowledge.ranker)
            options = knowledge.ranker.options
        finally:
            await knowledge.close()
    report(cases, options)


if __name__ == "__main__":
    asyncio.run(main())
