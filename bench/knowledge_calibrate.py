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
embedding, the cold cache's sentence embedding) over the searches alone, p50/p95 in ms, every
question once with a cold cache and once warm. Saved to bench/results/knowledge-meaning.json.
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
from dialogs.knowledge.meaning import CITED, MeaningOptions, MeaningRanker, displaces
from dialogs.knowledge.passages import Passage
from models import ChatMessage

KNOWLEDGE = Path(__file__).resolve().parents[1] / "tests" / "knowledge"
SETS = ("eval", "eval_fresh", "calibration")
RESULTS = Path(__file__).resolve().parent / "results" / "knowledge-meaning.json"


def load(name: str, file: str) -> list[dict]:
    path = KNOWLEDGE / name / file
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def best(
    retriever: HybridRetriever,
    ranker: MeaningRanker,
    text: str,
    history: list[ChatMessage],
    previous: list[Passage],
) -> tuple[list[Passage], Passage | None]:
    """The candidates as the dialog scores them, best by meaning first (find_passages without
    thresholds), and the retriever's choice among them (None where it has none)."""
    follow_up = follow_up_query(history, text)
    queries = [text] if follow_up is None else [text, follow_up]
    searches = [await retriever.search(q, CANDIDATES) for q in queries]
    choice = next((f[0] for f in searches if f and f[0].passed), None)
    candidates = [p for search in searches for p in search]
    previous = [dataclasses.replace(p, passed=False, found_by=CITED) for p in previous]
    context = follow_up_context(history, text)
    scored = await ranker.scored(text, [*candidates, *previous], context)
    if choice is not None:  # with its sentence score and focus
        choice = next(
            p for p in scored if (p.document_id, p.text) == (choice.document_id, choice.text)
        )
    return scored, choice


def used(scored: list[Passage], choice: Passage | None, options: MeaningOptions) -> Passage | None:
    """The passage the dialog uses with these options (MeaningRanker.rank, without joining)."""
    top = scored[0] if scored and (scored[0].sentence_score or 0.0) >= options.min_score else None
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


async def calibrate(retriever: HybridRetriever, ranker: MeaningRanker) -> None:
    options = ranker.options
    cases = []  # (set, kind, item or None for uncovered, question, scored, choice)
    for name in SETS:
        questions = load(name, "questions.jsonl")
        by_id = {q["id"]: q for q in questions if "id" in q}
        for item in questions:
            history: list[ChatMessage] = []
            previous: list[Passage] = []
            if item.get("follows"):
                first = by_id[item["follows"]]
                scored, choice = await best(retriever, ranker, first["question"], [], [])
                top = used(scored, choice, options)
                previous = [top] if top else []
                answer = top.focus if top else ""
                history = [ChatMessage("user", first["question"]), ChatMessage("assistant", answer)]
            scored, choice = await best(retriever, ranker, item["question"], history, previous)
            cases.append((name, item.get("kind", "plain"), item, item["question"], scored, choice))
        for item in load(name, "off_topic.jsonl") + load(name, "uncovered.jsonl"):
            scored, choice = await best(retriever, ranker, item["question"], [], [])
            cases.append((name, "uncovered", None, item["question"], scored, choice))

    def rows(bar: float, margin: float) -> list[dict]:
        tried = dataclasses.replace(options, min_score=bar, promote_margin=margin)
        return [
            row(name, kind, item, used(scored, choice, tried), question)
            for name, kind, item, question, scored, choice in cases
        ]

    chosen = rows(options.min_score, options.promote_margin)
    for r in chosen:
        mark = ("ok " if r["right"] else "DOC") if r["covered"] else "-- "
        fact = ("fact" if r["fact"] else "    ") if r["covered"] else "    "
        print(
            f"{r['set']:11} {r['kind']:10} {mark} {fact} s={r['sentence']:.3f} "
            f"c={r['chunk']:.3f} {r['question'][:60]!r} -> {r['focus'][:70]!r}"
        )
    print("\nbar   margin  right  fact   uncovered-with-passage   (inf: the retriever alone)")
    covered = sum(1 for r in chosen if r["covered"])
    uncovered = len(chosen) - covered
    for bar in (0.40, 0.44, 0.50):
        for margin in (-0.1, 0.0, 0.05, 0.1, 0.15, 0.2, float("inf")):
            rs = rows(bar, margin) if margin != float("inf") else rows(2.0, margin)
            right = sum(r["right"] for r in rs)
            fact = sum(r["fact"] for r in rs)
            noise = sum(1 for r in rs if not r["covered"] and r["focus"])
            print(
                f"{bar:.2f}  {margin:5.2f}  {right:3d}/{covered}  {fact:3d}/{covered}  "
                f"{noise:2d}/{uncovered}"
            )


async def latency(retriever: HybridRetriever, ranker: MeaningRanker) -> dict:
    """Per question, one after the other: the searches (as the turn already does them), then the
    reranking of their candidates; every question once with a cold sentence cache, then again
    warm. On a shared machine the absolute times vary: compare the columns of one run."""
    questions = [q["question"] for name in SETS for q in load(name, "questions.jsonl")]
    timings: dict[str, list[float]] = {"search": [], "rerank_cold": [], "rerank_warm": []}
    for key in ("rerank_cold", "rerank_warm"):
        for text in questions:
            started = time.perf_counter()
            candidates = await retriever.search(text, CANDIDATES)
            searched = time.perf_counter()
            await ranker.rank(text, candidates)
            timings[key].append(1000 * (time.perf_counter() - searched))
            timings["search"].append(1000 * (searched - started))

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
    print(json.dumps(result, indent=2))
    return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", action="store_true", help="measure the reranking's cost")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="botloom-calibrate-"))
    settings = dataclasses.replace(
        Settings.from_env(env_file=None), storage=f"sqlite:///{state}/k.db", log_level="WARNING"
    )
    knowledge = build_knowledge(settings)
    try:
        await knowledge.store.open()
        for name in ("eval", "eval_fresh"):
            await knowledge.ingestion(progress=lambda line: None).add([KNOWLEDGE / name / "docs"])
        if args.latency:
            await knowledge.embedder.embed(["warm up"])
            result = await latency(knowledge.retriever, knowledge.ranker)
            RESULTS.write_text(json.dumps(result, indent=1) + "\n")
        else:
            await calibrate(knowledge.retriever, knowledge.ranker)
    finally:
        await knowledge.close()


if __name__ == "__main__":
    asyncio.run(main())
