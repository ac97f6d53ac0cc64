"""The blind memory set (bench/data/blind/memory/memory_eval.json, written by a helper session
that never saw the code; never tune on it) through the whole bot, memory on, every item as a new
user:

    PYTHONPATH=. .venv/bin/python bench/memory_blind.py [--json FILE]

- pairs: the user's statements, then a question about them in the same conversation or a new one
  of the same user; recalled when the reply holds one of `expect` (and none of `expect_not`, the
  value a correction replaced);
- not_facts: a statement that must not become a fact about the user; a false fact when the
  user's kept memory (`/memory`, the rules' and the model's extraction alike) holds one of
  `must_not` afterwards;
- about_me: statements, then "what do you know about me?" (in its variants); answered when the
  reply holds every one of `expect_all`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.memory import Bot, Recorder, recalled
from bot.model_setup import build_model
from bot.settings import Settings
from models.api import close_resource

SET = Path(__file__).resolve().parent / "data" / "blind" / "memory" / "memory_eval.json"
RESULTS = Path(__file__).resolve().parent / "results" / "memory-blind.json"


def holds_none(reply: str, words: list[str]) -> bool:
    return not any(word.lower() in reply.lower() for word in words)


async def pair(bot: Bot, item: dict[str, Any], limit: asyncio.Semaphore) -> dict[str, Any]:
    user, conversation = f"user-{item['id']}", f"c-{item['id']}"
    async with limit:
        for text in item["say"]:
            await bot.say(conversation, user, text)
        asked_in = conversation if item["where"] == "same" else f"{conversation}-new"
        reply = await bot.say(asked_in, user, item["ask"])
    hit = recalled(reply, item["expect"]) and holds_none(reply, item.get("expect_not", []))
    return {"id": item["id"], "kind": item["kind"], "where": item["where"], "hit": hit,
            "reply": reply}  # fmt: skip


async def not_fact(bot: Bot, item: dict[str, Any], limit: asyncio.Semaphore) -> dict[str, Any]:
    user, conversation = f"user-{item['id']}", f"c-{item['id']}"
    async with limit:
        await bot.say(conversation, user, item["say"])
        kept = await bot.say(conversation, user, "/memory")
    return {"id": item["id"], "false_fact": not holds_none(kept, item["must_not"]), "kept": kept}


async def about_me(bot: Bot, item: dict[str, Any], limit: asyncio.Semaphore) -> dict[str, Any]:
    user, conversation = f"user-{item['id']}", f"c-{item['id']}"
    async with limit:
        for text in item["say"]:
            await bot.say(conversation, user, text)
        reply = await bot.say(conversation, user, item["ask"])
    found = [word for word in item["expect_all"] if word.lower() in reply.lower()]
    return {"id": item["id"], "all": len(found) == len(item["expect_all"]),
            "found": f"{len(found)}/{len(item['expect_all'])}", "reply": reply}  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recall-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=12, help="conversations at once")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    data = json.loads(SET.read_text(encoding="utf-8"))
    environ = {"BOTLOOM_GENERATION_TIMEOUT_S": "1800"}  # a busy CPU must not cut replies short
    base = Settings.from_env(environ, env_file=None)
    inner = build_model(base)
    inner.start()
    await inner.wait_ready()
    bot = Bot(replace(base, max_new_tokens=args.recall_tokens), Recorder(inner))
    limit = asyncio.Semaphore(args.concurrency)
    began = time.perf_counter()
    pairs, wrong, about = await asyncio.gather(
        asyncio.gather(*(pair(bot, item, limit) for item in data["pairs"])),
        asyncio.gather(*(not_fact(bot, item, limit) for item in data["not_facts"])),
        asyncio.gather(*(about_me(bot, item, limit) for item in data["about_me"])),
    )
    for row in pairs:
        print(f"  {row['id']} {row['kind']:<10} [{row['where']}] hit={row['hit']!s:5} "
              f"{row['reply'][:80]!r}")  # fmt: skip
    same = [r["hit"] for r in pairs if r["where"] == "same"]
    new = [r["hit"] for r in pairs if r["where"] == "new"]
    corrections = [r["hit"] for r, item in zip(pairs, data["pairs"], strict=True)
                   if item.get("expect_not")]  # fmt: skip
    summary = {
        "recall": f"{sum(same) + sum(new)}/{len(pairs)}",
        "recall_same": f"{sum(same)}/{len(same)}",
        "recall_new": f"{sum(new)}/{len(new)}",
        "corrections": f"{sum(corrections)}/{len(corrections)}",
        "false_facts": f"{sum(r['false_fact'] for r in wrong)}/{len(wrong)}",
        "what_do_you_know_about_me": f"{sum(r['all'] for r in about)}/{len(about)}",
        "seconds": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(summary, indent=2))
    args.json.write_text(
        json.dumps({"summary": summary, "pairs": pairs, "not_facts": wrong, "about_me": about},
                   indent=1) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    await close_resource(inner)


if __name__ == "__main__":
    asyncio.run(main())
