"""User memory on the embedded default: recall, a long conversation, reply endings, and the cost.

    .venv/bin/python bench/memory.py [--quick] [--model embedded] [--json F]

Runs two held-out sets through the whole bot (activity handler, dialogs, user memory, the engine),
in one process, memory on and memory off side by side: tests/data/memory_eval.json (22 pairs) and
tests/data/memory_eval_fresh.json (26 pairs, written before the issue-14 changes it measures). No
prompt, rule or test uses them. Each pair states a fact, then asks for it: in the same
conversation or in a new conversation of the same user. A reply recalls the fact when it contains
an expected word. Recall replies are capped at --recall-tokens (the fact comes first; the cap is
not what they measure).

At the default cap (BOTLOOM_MAX_NEW_TOKENS): a long conversation whose turn 2 states a fact asked
for at the last turn (memory on, and memory off where only the rolling summary can carry it),
and requests for long answers, twice each; replies that end mid-sentence
are counted over these. The cost: memory on vs off, turn by turn alternating, prompt tokens per
model call and the p50 turn latency. --quick: the first 4 pairs of each kind in each set, a 12-turn
conversation, no cost; --parts: some of recall, long, endings, cost. Not a test: figures vary
with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from botbuilder.core import MemoryStorage
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import Activity, ChannelAccount, ConversationAccount

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import build_runtime
from bot.model_setup import build_model
from bot.settings import Settings
from bot.turns.identity import as_identity
from dialogs.answer.reply_ending import ends_mid_sentence
from models import ChatMessage, ChatModel, GenerationParams
from models.api import WrappedChatModel, close_resource

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
SETS = {"old": DATA / "memory_eval.json", "fresh": DATA / "memory_eval_fresh.json"}


class Recorder(WrappedChatModel):
    """A ChatModel that passes everything to `inner` and records each call's prompt tokens."""

    def __init__(self, inner: ChatModel) -> None:
        super().__init__(inner)
        self.prompt_tokens: list[int] = []

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[str]:
        self.prompt_tokens.append(self.inner.count_tokens(messages))
        async for piece in self.inner.stream(messages, params):
            yield piece


class Bot:
    """One configuration of the bot, with its own state; `say` runs one turn."""

    def __init__(self, settings: Settings, model: Recorder) -> None:
        self.runtime = build_runtime(settings, model=model, storage=MemoryStorage())
        self.adapters: dict[tuple[str, str], TestAdapter] = {}
        self.latencies: list[float] = []
        self.replies: list[str] = []  # the model's replies (not commands)

    async def say(self, conversation: str, user: str, text: str) -> str:
        adapter = self.adapters.get((conversation, user))
        if adapter is None:
            template = Activity(
                channel_id="emulator",
                service_url="http://127.0.0.1:9/",
                conversation=ConversationAccount(id=conversation),
                from_property=ChannelAccount(id=user, name=user),
                recipient=ChannelAccount(id="bot", name="botloom"),
            )
            adapter = TestAdapter(template_or_conversation=template)
            self.adapters[(conversation, user)] = adapter
        adapter.activity_buffer.clear()
        started = time.perf_counter()
        # The user as a channel that vouches for its users (Teams) would hand them to the bot:
        # an Emulator's from.id alone keeps memory within its conversation.
        logic = as_identity(f"emulator/users/{user}", self.runtime.bot.on_turn)
        await adapter.process_activity(Activity(type="message", text=text), logic)
        self.latencies.append(time.perf_counter() - started)
        texts = [a.text or "" for a in adapter.activity_buffer if a.type == "message"]
        reply = "\n".join(texts)
        self.replies.append(reply)
        return reply


def recalled(reply: str, expect: Sequence[str]) -> bool:
    return any(word.lower() in reply.lower() for word in expect)


def role_slip(reply: str, expect: Sequence[str]) -> bool:
    """The bot claims the user's fact as its own ("My name is Priya", "I live in Lisbon")."""
    lowered = reply.lower()
    return any(
        f"{lead} {word.lower()}" in lowered
        for word in expect
        for lead in ("my name is", "i am", "i'm", "i live in", "i work at", "i work for")
    )


async def run_pair(
    bot: Bot, tag: str, index: int, pair: dict[str, Any], limit: asyncio.Semaphore
) -> dict:
    """One statement and its follow-up: in the same conversation or a new one of the user."""
    user = f"{tag}-user-{index}"
    async with limit:
        await bot.say(f"{tag}{index}", user, pair["say"])
        conversation = f"{tag}{index}" if pair["where"] == "same" else f"{tag}{index}-new"
        reply = await bot.say(conversation, user, pair["ask"])
    return {
        "where": pair["where"],
        "hit": recalled(reply, pair["expect"]),
        "slip": role_slip(reply, pair["expect"]),
        "reply": reply,
    }


def recall_of(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    same = [o["hit"] for o in outcomes if o["where"] == "same"]
    new = [o["hit"] for o in outcomes if o["where"] == "new"]
    return {
        "recall_same": f"{sum(same)}/{len(same)}",
        "recall_new": f"{sum(new)}/{len(new)}",
        "recall": round((sum(same) + sum(new)) / max(1, len(outcomes)), 3),
        "role_slips": sum(o["slip"] for o in outcomes),
    }


async def run_long(bot: Bot, data: dict[str, Any], turns: int, limit: asyncio.Semaphore) -> bool:
    """A conversation whose turn 2 states a fact that the last turn asks for (none: 0 turns)."""
    fact, filler = data["long_fact"], data["filler"]
    if not turns:
        return False
    async with limit:
        await bot.say("long", "long-user", "Hello!")
        await bot.say("long", "long-user", fact["say"])
        for turn in range(3, turns):
            await bot.say("long", "long-user", filler[turn % len(filler)])
        reply = await bot.say("long", "long-user", fact["ask"])
    print(f"  [turn {turns}] {fact['ask']!r} -> {reply[:90]!r}", flush=True)
    return recalled(reply, fact["expect"])


async def run_endings(bot: Bot, prompts: list[str], limit: asyncio.Semaphore) -> None:
    """Requests for long answers, which reach the cap; each twice, in two conversations."""

    async def one(index: int, text: str) -> None:
        async with limit:
            await bot.say(f"end{index}", f"end-user-{index}", text)

    await asyncio.gather(*(one(i, text) for i, text in enumerate(prompts * 2)))


async def cost(bots: dict[str, Bot], model: Recorder, turns: list[str]) -> dict[str, Any]:
    """Memory on vs off, one turn at a time, alternating: prompt tokens and p50 latency."""
    figures: dict[str, dict[str, list[float]]] = {
        name: {"tokens": [], "seconds": []} for name in bots
    }
    for _index, text in enumerate(turns):
        for name, bot in bots.items():
            calls = len(model.prompt_tokens)
            started = time.perf_counter()
            await bot.say("cost", "cost-user", text)
            figures[name]["seconds"].append(time.perf_counter() - started)
            figures[name]["tokens"].extend(model.prompt_tokens[calls:])
    return {
        name: {
            "turns": len(f["seconds"]),
            "prompt_tokens_mean": round(statistics.mean(f["tokens"]), 1) if f["tokens"] else 0,
            "p50_turn_s": round(statistics.median(f["seconds"]), 2),
        }
        for name, f in figures.items()
    }


def endings_of(bot: Bot) -> dict[str, Any]:
    replies = [r for r in bot.replies if r and not r.startswith("Got it, I'll remember")]
    return {
        "replies_checked": len(replies),
        "mid_sentence": sum(ends_mid_sentence(r) for r in replies),
        "median_reply_words": statistics.median(len(r.split()) for r in replies) if replies else 0,
    }


def first_of_each(pairs: list[dict[str, Any]], count: int) -> set[int]:
    """The indices of the first `count` pairs of each kind (same / new conversation)."""
    kinds = {p["where"] for p in pairs}
    return {
        i for kind in kinds for i in [i for i, p in enumerate(pairs) if p["where"] == kind][:count]
    }


PARTS = ("recall", "long", "endings", "cost")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--quick", action="store_true", help="4 + 4 pairs a set, 12 turns, no cost")
    parser.add_argument("--parts", default=",".join(PARTS), help="a subset of " + ",".join(PARTS))
    parser.add_argument("--recall-tokens", type=int, default=64)
    parser.add_argument("--long-turns", type=int, default=40)
    parser.add_argument("--cost-turns", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=12, help="conversations at once")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    parts = set(args.parts.split(",")) - ({"cost"} if args.quick else set())
    sets = {name: json.loads(path.read_text(encoding="utf-8")) for name, path in SETS.items()}
    data = sets["old"]  # its filler, long fact and long-answer requests
    long_turns = 12 if args.quick else args.long_turns
    # A busy CPU with a dozen conversations at once is slow: no deadline cuts replies short.
    environ = {"BOTLOOM_MODEL": args.model, "BOTLOOM_GENERATION_TIMEOUT_S": "1800"}
    base = Settings.from_env(environ, env_file=None)
    inner = build_model(base)
    inner.start()
    await inner.wait_ready()
    model = Recorder(inner)
    short = replace(base, max_new_tokens=args.recall_tokens)
    configs = {"memory off": replace(short, memory=False), "memory on": short}
    bots = {name: Bot(settings, model) for name, settings in configs.items()}
    capped = Bot(base, model)  # the default cap: the long conversation and long answers
    capped_off = Bot(replace(base, memory=False), model)  # only the summary carries turn 2
    limit = asyncio.Semaphore(args.concurrency)
    results: dict[str, Any] = {
        "model": model.name,
        "system_prompt": base.system_prompt,
        "max_new_tokens": base.max_new_tokens,
        "recall_tokens": args.recall_tokens,
        "parts": sorted(parts),
    }
    every = {**bots, "capped": capped, "capped, memory off": capped_off}

    def save() -> None:  # after each stage, so that a run cut short keeps what it measured
        results["replies"] = {name: bot.replies for name, bot in every.items()}
        print(json.dumps({k: v for k, v in results.items() if k != "replies"}, indent=2))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    began = time.perf_counter()
    jobs = {
        (name, tag): asyncio.gather(
            *(
                run_pair(bot, tag, i, p, limit)
                for i, p in enumerate(pairs["pairs"])
                if not args.quick or i in first_of_each(pairs["pairs"], 4)
            )
        )
        for name, bot in bots.items()
        for tag, pairs in sets.items()
        if "recall" in parts
    }
    turns = long_turns if "long" in parts else 0
    endings = data["endings"][: 2 if args.quick else None] if "endings" in parts else []
    outcomes = await asyncio.gather(
        *jobs.values(),
        run_endings(capped, endings, limit),
        run_long(capped_off, data, turns, limit),
        run_long(capped, data, turns, limit),
    )
    for (name, tag), outcome in zip(jobs, outcomes, strict=False):
        results.setdefault(name, {})[tag] = recall_of(outcome)
        for o in outcome:
            print(f"  {name} {tag} [{o['where']}] hit={o['hit']} {o['reply'][:80]!r}", flush=True)
    for name, bot in bots.items():
        results.setdefault(name, {})["endings"] = endings_of(bot)
    results["default cap"] = {
        **({f"turn_{turns}_recalls_turn_2": outcomes[-1]} if turns else {}),
        **({f"turn_{turns}_recalls_turn_2_memory_off": outcomes[-2]} if turns else {}),
        **endings_of(capped),
        "memory off": endings_of(capped_off),
    }
    results["recall_and_endings_s"] = round(time.perf_counter() - began, 1)
    save()
    if "cost" in parts:
        on_off = {"memory off": Bot(configs["memory off"], model), "memory on": Bot(short, model)}
        for bot in on_off.values():
            await bot.say("cost", "cost-user", data["pairs"][0]["say"])
        results["cost"] = await cost(on_off, model, data["filler"][: args.cost_turns])
        save()
    await close_resource(inner)


if __name__ == "__main__":
    asyncio.run(main())
