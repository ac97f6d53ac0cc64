"""The knowledge evaluation: questions about an invented organisation, answered by the bot.

    .venv/bin/python bench/knowledge_eval.py [--set eval|eval_fresh|both|blind] [--limit N]

The documents and questions live in tests/knowledge/eval/ (the questions are data: no prompt
or code names them) and tests/knowledge/eval_fresh/ (a second organisation, written after the
grounding was designed and never tuned on). `--set blind` runs bench/data/blind/knowledge/
(written by a helper session that never saw the code; never tune on it), whose follow-up
questions are asked in the conversation of the question they follow, right after it, and whose
uncovered questions count as the off-topic ones. The documents are indexed with the default
embedding model into a fresh SQLite file; every question is asked in a new conversation
through the real bot (dialogs, the embedded default model, the console channel, whose replies
end with a "Sources:" line); then the same questions with an empty index, in the same run.
Printed, and saved to bench/results/knowledge-eval[-SET].json:

- retrieval hit rate: the question's document is among the cited sources of the reply;
- answers containing the fact (any of the question's accepted spellings, case-insensitive);
- the same without knowledge, for contrast;
- the off-topic questions (tests/knowledge/eval/off_topic.jsonl): how many found passages
  above the threshold (so would get sources), as the dialog finds them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botbuilder.schema import Activity, ActivityTypes

from bot.app import Runtime, build_runtime
from bot.console import ConsoleAdapter
from bot.settings import Settings
from dialogs.answer.knowledge_stage import find

SETS = Path(__file__).resolve().parents[1] / "tests" / "knowledge"
FOLDERS = {"blind": Path(__file__).resolve().parent / "data" / "blind" / "knowledge"}
RESULTS = Path(__file__).resolve().parent / "results" / "knowledge-eval.json"
PARTIAL_DIR = Path(tempfile.gettempdir())


def load(folder: Path, name: str) -> list[dict]:
    path = folder / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Collect:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, activity: Activity) -> None:
        if activity.type == ActivityTypes.message and activity.from_property.role == "bot":
            self.messages.append(activity.text or "")


async def ask(runtime: Runtime, question: str, conversation: str) -> str:
    collect = Collect()
    adapter = ConsoleAdapter(io.StringIO(), "eval", conversation, recorder=collect)
    await adapter.process(
        adapter.activity(ActivityTypes.message, text=question), runtime.bot.on_turn
    )
    return collect.messages[-1] if collect.messages else ""


def split_sources(text: str) -> tuple[str, str]:
    reply, _, sources = text.partition("\n\nSources: ")
    return reply, sources


async def off_topic_sources(settings: Settings, questions: list[dict]) -> tuple[int, int]:
    """How many off-topic questions find passages as the dialog finds them (no generation
    needed: without passages the reply has no sources, with them it cites at least one), and
    how many get the bot's "I couldn't find that in the documents" (on the documents' topic,
    nothing answering, a question: dialogs/chat_dialog.py NOT_IN_DOCUMENTS)."""
    runtime = build_runtime(settings)
    try:
        knowledge = runtime.knowledge
        assert knowledge is not None
        found = [
            (
                item["question"],
                await find(
                    knowledge.retriever,
                    runtime.model,
                    [],
                    item["question"],
                    knowledge.prompt,
                    ranker=knowledge.ranker,
                ),
            )
            for item in questions
        ]
        cited = sum(1 for _, f in found if f.passages)
        said = sum(1 for text, f in found if f.unanswered(text))
        return cited, said
    finally:
        await runtime.aclose()


async def run(
    settings: Settings,
    questions: list[dict],
    label: str,
    docs: Path | None,
    earlier: dict[str, dict] | None = None,
) -> dict:
    """Every question in a new conversation; `docs` indexed first (None: an empty index). A
    follow-up (`follows`: the id of a question in `earlier`) comes right after that question."""
    runtime = build_runtime(settings)
    try:
        runtime.model.inner.start()
        await runtime.model.inner.wait_ready()
        knowledge = runtime.knowledge
        assert knowledge is not None
        if docs is not None:
            report = await knowledge.ingestion(progress=lambda line: None).add([docs])
            print(f"[{label}] indexed: {report.summary()}")
        titles = {Path(d.source).name: d.title for d in await knowledge.store.documents()}
        rows = []
        started = time.monotonic()
        for number, item in enumerate(questions):
            conversation = f"{label}-{number}"
            if item.get("follows") and earlier:
                await ask(runtime, earlier[item["follows"]]["question"], conversation)
            text = await ask(runtime, item["question"], conversation)
            reply, sources = split_sources(text)
            facts = [f.lower() for f in item.get("facts", [])]
            row = {
                "kind": item.get("kind", "plain"),
                "question": item["question"],
                "reply": reply,
                "sources": sources,
                "fact": any(f in reply.lower() for f in facts) if facts else None,
                "hit": bool(item.get("document")) and titles.get(item["document"], "?") in sources,
            }
            rows.append(row)
            print(
                f"[{label}] fact={row['fact']!s:5} hit={row['hit']!s:5} {reply[:90]!r}", flush=True
            )
            partial = PARTIAL_DIR / f"botloom-knowledge-eval-{label.replace(' ', '-')}.json"
            partial.write_text(json.dumps({label: rows}, indent=1) + "\n")
        seconds = time.monotonic() - started
    finally:
        await runtime.aclose()
    return {"rows": rows, "seconds": seconds}


def rate(rows: list[dict], key: str) -> float:
    return sum(1 for r in rows if r[key]) / len(rows) if rows else 0.0


async def evaluate(name: str, base: Settings, args: argparse.Namespace) -> dict:
    """One set, with and without knowledge (and its off-topic questions), in this process."""
    folder = FOLDERS.get(name, SETS / name)
    every = load(folder, "questions.jsonl")
    questions = every[: args.limit or None]
    earlier = {q["id"]: q for q in every if "id" in q}
    off_topic = load(folder, "off_topic.jsonl") or load(folder, "uncovered.jsonl")
    state = Path(tempfile.mkdtemp(prefix=f"botloom-{name}-"))
    with_settings = dataclasses.replace(base, storage=f"sqlite:///{state}/with.db")
    without_settings = dataclasses.replace(base, storage=f"sqlite:///{state}/without.db")
    empty = {"rows": [], "seconds": 0.0}
    docs = folder / "docs"
    label = f"{name} with knowledge"
    grounded = (
        await run(with_settings, questions, label, docs, earlier)
        if args.only != "without"
        else empty
    )
    noise = not_found = 0
    if off_topic and args.only != "without":
        noise, not_found = await off_topic_sources(with_settings, off_topic)
        print(f"[{name}] off-topic questions that found passages: {noise}/{len(off_topic)}")
        print(f"[{name}] ... answered 'not in the documents': {not_found}/{len(off_topic)}")
    label = f"{name} without knowledge"
    plain = (
        await run(without_settings, questions, label, None, earlier)
        if args.only != "with"
        else empty
    )
    rows = grounded["rows"]
    summary = {
        "questions": len(questions),
        "with_knowledge": {"hit_rate": rate(rows, "hit"), "fact_rate": rate(rows, "fact")},
        "by_kind": {
            kind: {
                "questions": len(of_kind),
                "hit_rate": rate(of_kind, "hit"),
                "fact_rate": rate(of_kind, "fact"),
            }
            for kind in sorted({r["kind"] for r in rows})
            for of_kind in [[r for r in rows if r["kind"] == kind]]
        },
        "without_knowledge": {"fact_rate": rate(plain["rows"], "fact")},
        "off_topic_with_passages": noise,
        "off_topic_not_in_documents": not_found,
        "off_topic": len(off_topic),
        "seconds": {"with": round(grounded["seconds"], 1), "without": round(plain["seconds"], 1)},
    }
    return {"summary": summary, "with": rows, "without": plain["rows"]}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", choices=("eval", "eval_fresh", "both", "blind"), default="both")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--only", choices=("with", "without"), help="one half")
    args = parser.parse_args()
    base = dataclasses.replace(
        Settings.from_env(env_file=None),
        max_new_tokens=args.max_new_tokens,
        log_level="WARNING",
        # Quality is measured here, not speed: a busy machine must not turn answers into apologies.
        generation_timeout_s=900.0,
        turn_timeout_s=1200.0,
    )
    names = ("eval", "eval_fresh") if args.set == "both" else (args.set,)
    results = {name: await evaluate(name, base, args) for name in names}
    out = {
        "model": base.model,
        "embedding_model": base.embedding_model,
        "max_new_tokens": args.max_new_tokens,
        "summary": {name: r["summary"] for name, r in results.items()},
        "sets": results,
    }
    print(json.dumps(out["summary"], indent=2))
    name = "" if args.set == "both" else f"-{args.set}"
    name += f"-{args.only}" if args.only else ""
    name += f"-limit{args.limit}" if args.limit else ""
    RESULTS.with_name(f"knowledge-eval{name}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
