"""Calibrating the meaning-based passage ranking (dialogs/knowledge/meaning.py), and its cost.

    .venv/bin/python bench/knowledge_calibrate.py [--latency]

Indexes tests/knowledge/eval/docs and eval_fresh/docs with the default embedding model into a
fresh SQLite file, then for every question of tests/knowledge/eval, eval_fresh and calibration
(never the blind set) prints the best passage after reranking: its document, its best sentence's
score, the whole chunk's, and whether a fact of the question is in the sentences shown to the
model. Follow-ups are scored as the dialog scores them (after their question, with its passage
as the previous answer's citation). Then, for thresholds on the best sentence's score: questions
answered from the right document, and uncovered or off-topic questions that would get passages.
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
from dialogs.knowledge.meaning import MeaningRanker
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
) -> list[Passage]:
    """The candidates as the dialog scores them, best first (find_passages without threshold)."""
    follow_up = follow_up_query(history, text)
    queries = [text] if follow_up is None else [text, follow_up]
    candidates = [p for q in queries for p in await retriever.search(q, CANDIDATES)]
    return await ranker.scored(text, [*candidates, *previous], follow_up_context(history, text))


async def calibrate(retriever: HybridRetriever, ranker: MeaningRanker) -> None:
    rows = []
    for name in SETS:
        questions = load(name, "questions.jsonl")
        by_id = {q["id"]: q for q in questions if "id" in q}
        for item in questions:
            history: list[ChatMessage] = []
            previous: list[Passage] = []
            if item.get("follows"):
                first = by_id[item["follows"]]
                found = await best(retriever, ranker, first["question"], [], [])
                previous = found[:1]
                answer = found[0].focus if found else ""
                history = [ChatMessage("user", first["question"]), ChatMessage("assistant", answer)]
            found = await best(retriever, ranker, item["question"], history, previous)
            top = found[0] if found else None
            shown = (top.focus if top else "").lower()
            rows.append(
                {
                    "set": name,
                    "kind": item.get("kind", "plain"),
                    "covered": True,
                    "right": bool(top) and Path(top.source).name == item["document"],
                    "fact": any(f.lower() in shown for f in item["facts"]),
                    "sentence": top.sentence_score if top else 0.0,
                    "chunk": top.score if top else 0.0,
                    "question": item["question"],
                    "focus": top.focus if top else "",
                }
            )
        for item in load(name, "off_topic.jsonl") + load(name, "uncovered.jsonl"):
            found = await best(retriever, ranker, item["question"], [], [])
            top = found[0] if found else None
            rows.append(
                {
                    "set": name,
                    "kind": "uncovered",
                    "covered": False,
                    "sentence": top.sentence_score if top else 0.0,
                    "chunk": top.score if top else 0.0,
                    "question": item["question"],
                    "focus": top.focus if top else "",
                }
            )
    for row in rows:
        mark = ("ok " if row["right"] else "DOC") if row["covered"] else "-- "
        fact = ("fact" if row["fact"] else "    ") if row["covered"] else "    "
        print(
            f"{row['set']:11} {row['kind']:10} {mark} {fact} s={row['sentence']:.3f} "
            f"c={row['chunk']:.3f} {row['question'][:60]!r} -> {row['focus'][:70]!r}"
        )
    covered = [r for r in rows if r["covered"]]
    uncovered = [r for r in rows if not r["covered"]]
    print(f"\nright document first: {sum(r['right'] for r in covered)}/{len(covered)}")
    print(f"fact in the shown sentences: {sum(r['fact'] for r in covered)}/{len(covered)}")
    print("threshold  right-and-kept  uncovered-kept")
    for step in range(30, 71, 2):
        bar = step / 100
        kept = sum(1 for r in covered if r["right"] and r["sentence"] >= bar)
        noise = sum(1 for r in uncovered if r["sentence"] >= bar)
        print(f"  {bar:.2f}     {kept:3d}/{len(covered)}          {noise:2d}/{len(uncovered)}")


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
