"""The extra cost per turn of memory by meaning (issue 25): the memory stage with the embedding
model (all-MiniLM-L6-v2, the embedded default) against the same stage matching by words, turn by
turn alternating, over conversations of statements, questions about the user, "what do you know
about me?" and plain chat; one run, no model reply (the stage's work is the same whatever replies).

    PYTHONPATH=. .venv/bin/python bench/memory_latency.py [--users 12] [--json FILE]

The embedding model loads before the run (the first turn of a process pays its load once: about
a second on a free CPU). Prints p50/p95 of each and of the difference per turn, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

from botbuilder.core import ConversationState, MemoryStorage, TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import Activity, ChannelAccount, ConversationAccount

from bot.turns.identity import as_identity
from dialogs.answer.memory_stage import MemoryStage
from dialogs.answer.stages import TurnDraft
from dialogs.memory.history import ConversationMemory
from dialogs.memory.meaning import ABOUT_ME, NOT_ABOUT_ME, FactMeaning
from dialogs.memory.user_store import UserMemory
from models.embeddings import EmbeddingWorker, HFEmbeddingModel
from models.fake import FakeChatModel

TURNS = [  # one user's conversation: statements, questions about them, plain chat
    "Hi! I have a cat called Pixel.",
    "Can you explain how photosynthesis works?",
    "My daughter is called Maya and she starts school in September.",
    "What's my cat called?",
    "I work as a paramedic in Leeds.",
    "Write a haiku about autumn.",
    "Actually, I work in York now, not Leeds.",
    "Where do I work?",
    "I'm flying to Tokyo on 14 April.",
    "What is the capital of Australia?",
    "When is my trip?",
    "What do you know about me?",
]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


class Stage:
    """A memory stage on its own storage; `turn` times one prepare()."""

    def __init__(self, meaning: FactMeaning | None) -> None:
        storage = MemoryStorage()
        self.stage = MemoryStage(
            ConversationMemory(ConversationState(storage)),
            UserMemory(storage),
            model=FakeChatModel(),
            system_prompt="You are a test.",
            meaning=meaning,
        )

    async def turn(self, user: str, text: str) -> tuple[float, float]:
        template = Activity(
            channel_id="emulator",
            service_url="http://127.0.0.1:9/",
            conversation=ConversationAccount(id=f"c-{user}"),
            from_property=ChannelAccount(id=user, name=user),
            recipient=ChannelAccount(id="bot", name="bot"),
        )
        took = cpu = 0.0

        async def logic(turn_context: TurnContext) -> None:
            nonlocal took, cpu
            started, cpu_started = time.perf_counter(), time.process_time()
            await self.stage.prepare(turn_context, TurnDraft(text, [], 2048))
            took, cpu = time.perf_counter() - started, time.process_time() - cpu_started

        adapter = TestAdapter(template_or_conversation=template)
        logic_as_user = as_identity(f"emulator/users/{user}", logic)
        await adapter.process_activity(Activity(type="message", text=text), logic_as_user)
        return took * 1000, cpu * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=12, help="conversations, one after another")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    worker = EmbeddingWorker(HFEmbeddingModel())
    await worker.embed(["warm up"])  # the load, paid once per process, is not a turn's cost
    by_words = Stage(None)
    meaning_ms: list[tuple[float, float]] = []
    words_ms: list[tuple[float, float]] = []
    load = os.getloadavg()[0]
    for user in range(args.users):
        # Each user's texts are new to the cache, as other users' are (the intent's phrasings,
        # embedded once per process, are not): one conversation's cost, not a repeat's.
        meaning = FactMeaning(worker.embed)
        await meaning.warm([*ABOUT_ME, *NOT_ABOUT_ME])
        by_meaning = Stage(meaning)
        for text in TURNS:
            meaning_ms.append(await by_meaning.turn(f"u{user}", text))
            words_ms.append(await by_words.turn(f"u{user}", text))

    def figures(values: list[float]) -> dict[str, float]:
        return {"p50": statistics.median(values), "p95": percentile(values, 0.95)}

    calls = worker.batches - 1 - args.users  # less the warm-ups
    result: dict[str, object] = {"turns": len(meaning_ms), "embedding_calls": calls}
    for kind, index in (("wall", 0), ("cpu", 1)):  # cpu: the process's CPU time in the turn
        result[f"{kind}_by_meaning_ms"] = figures([m[index] for m in meaning_ms])
        result[f"{kind}_by_words_ms"] = figures([w[index] for w in words_ms])
        extra = [m[index] - w[index] for m, w in zip(meaning_ms, words_ms, strict=True)]
        result[f"{kind}_extra_ms"] = figures(extra)
    result["load_average_1min"] = [load, os.getloadavg()[0]]
    result["cpus"] = os.cpu_count()
    result = json.loads(json.dumps(result), parse_float=lambda v: round(float(v), 1))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    worker.close()


if __name__ == "__main__":
    asyncio.run(main())
