"""The scores behind dialogs/memory/meaning.py's thresholds, for an embedding model:

    PYTHONPATH=. .venv/bin/python bench/memory_calibrate.py [--embedding-model embedded]

On the memory sets beside the code (tests/data/memory_eval*.json) and the calibration set
(bench/data/memory_calibration.json), never the blind set: each statement is kept as the bot
keeps it, every set's facts are one user's memory (the other pairs' facts are the distractors),
and each question is scored against them. Prints, per set, the right fact's score and the best
wrong one's, the best score of questions nothing answers, "what do you know about me?" phrasings
and other messages against the exemplars, and how each correction is applied. A threshold
belongs between the lowest right score and the highest wrong one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from bot.knowledge.setup import create_embedding_model
from dialogs.memory.meaning import (
    ABOUT_ME,
    ABOUT_ME_MIN,
    ANSWER_MIN,
    CLOSEST_MIN,
    FactMeaning,
    query_form,
)
from dialogs.memory.statements import life_statements
from dialogs.memory.user_facts import Fact, remember_request
from models.embeddings import EmbeddingWorker

ROOT = Path(__file__).resolve().parents[1]
SETS = {
    "old": ROOT / "tests" / "data" / "memory_eval.json",
    "fresh": ROOT / "tests" / "data" / "memory_eval_fresh.json",
    "calibration": ROOT / "bench" / "data" / "memory_calibration.json",
}


def kept(text: str) -> list[Fact]:
    request = remember_request(text)
    if request is not None:
        return [request]
    return [s.fact for s in life_statements(text) if s.fact is not None]


async def pairs(meaning: FactMeaning, name: str, data: dict) -> list[dict[str, str]]:
    """Each question against its pair's facts and the other pairs' facts of other keys (one user
    has one name and one home: two people's names are not a distractor a user meets)."""
    facts = [(i, f) for i, pair in enumerate(data["pairs"]) for f in kept(pair["say"])]
    sure = closest = 0
    for i, pair in enumerate(data["pairs"]):
        expect = pair["expect"] if isinstance(pair["expect"], str) else pair["expect"][0]
        keys = {f.key for k, f in facts if k == i and not f.key.startswith(("said:", "note:"))}
        mine = [(k == i, f.as_dict()) for k, f in facts if k == i or f.key not in keys]
        if not any(own for own, _ in mine):
            print(f"  {name}: NOT KEPT {pair['say']!r}")
            continue
        scores = await meaning.fact_scores(query_form(pair["ask"]), [f for _, f in mine])
        right = max(s for s, (own, _) in zip(scores, mine, strict=True) if own)
        wrong = max((s for s, (own, _) in zip(scores, mine, strict=True) if not own), default=0.0)
        answer, score = await meaning.answers(pair["ask"], [f for _, f in mine])
        said = " ".join(f["text"] for f in answer)
        ok = expect.lower() in said.lower()
        sure += ok and score >= ANSWER_MIN
        closest += ok and score < ANSWER_MIN
        mark = ("ok " if score >= ANSWER_MIN else "ok~") if ok else "MISS"
        print(f"  {name} {mark} right={right:.2f} wrong={wrong:.2f} {pair['ask']!r} -> {said!r}")
    print(f"{name}: {sure} + {closest}/{len(data['pairs'])} answered with the right fact at "
          f"ANSWER_MIN={ANSWER_MIN} + as the closest at CLOSEST_MIN={CLOSEST_MIN}")  # fmt: skip
    return [f.as_dict() for _, f in facts]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--embedding-model", default="embedded")
    args = parser.parse_args()
    worker = EmbeddingWorker(create_embedding_model(args.embedding_model))
    meaning = FactMeaning(worker.embed)
    every: list[dict[str, str]] = []
    for name, path in SETS.items():
        every += await pairs(meaning, name, json.loads(path.read_text(encoding="utf-8")))
    calibration = json.loads(SETS["calibration"].read_text(encoding="utf-8"))
    user = [f.as_dict() for pair in calibration["pairs"] for f in kept(pair["say"])]
    for question in calibration["unanswered"]:  # against the calibration user's facts
        scores = await meaning.fact_scores(query_form(question), user)
        best = user[int(scores.argmax())]["text"]
        print(f"  unanswered best={scores.max():.2f} {question!r} -> {best!r}")
    for label in ("about_me", "not_about_me"):
        for text in calibration[label]:
            score = float((await meaning.similarities(text, ABOUT_ME)).max())
            said = await meaning.is_about_me(text)
            print(f"  {label} {score:.2f} {'ABOUT ME' if said else '-':8} {text!r}")
    print(f"(ABOUT_ME_MIN={ABOUT_ME_MIN})")
    for item in calibration["corrections"]:
        before = [s.fact for s in life_statements(item["say"]) if s.fact]
        facts = [*every[:12], *(f.as_dict() for f in before)]  # older facts of the user first
        new, replaced = await meaning.plan(life_statements(item["fix"]), facts)
        keys = {f.key for f in new}  # as UserMemory.replace: the replaced texts and the same keys
        left = [f["text"] for f in facts if f["text"] not in replaced and f["key"] not in keys]
        after = left + [f.text for f in new]
        gone = all(f.text not in after for f in before)  # the corrected fact, replaced
        ok = gone and any(item["new"] in f.text and item["old"] not in f.text for f in new)
        print(f"  correction {'ok ' if ok else 'MISS'} {item['fix']!r}: -{sorted(replaced)} "
              f"+{[f.text for f in new]}")  # fmt: skip
    worker.close()


if __name__ == "__main__":
    asyncio.run(main())
