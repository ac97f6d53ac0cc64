"""User memory on the embedded default: recall, a long conversation, reply endings, and the cost.

    .venv/bin/python bench/memory.py [--model embedded] [--pairs 22] [--long-turns 40] [--json F]

Runs the held-out set in tests/data/memory_eval.json (no prompt, rule or test uses it) through
the whole bot (activity handler, dialogs, user memory, the engine), in one process, side by side:

- before:  the old system prompt, memory off (the bot as it was before issue 14)
- prompt:  the tuned system prompt, memory off
- memory:  the tuned system prompt, memory on

Each pair states a fact, then asks for it: in the same conversation (after one unrelated turn) or
in a new conversation of the same user. A reply recalls the fact when it contains an expected
word. Also: a long conversation whose turn 2 states a fact asked for at the last turn (memory on,
and memory off where only the rolling summary can carry it); replies that end mid-sentence; prompt
tokens per model call and the p50 turn latency. Not a test: figures vary with the machine.
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
from dialogs.reply_ending import ends_mid_sentence
from models import ChatMessage, ChatModel, GenerationParams

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "memory_eval.json"
OLD_SYSTEM_PROMPT = (
    "You are botloom, a friendly and concise assistant in a chat. "
    "Answer in the user's language, in a few sentences."
)


class Recorder:
    """A ChatModel that passes everything to `inner` and records each call's prompt tokens."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner
        self.prompt_tokens: list[int] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self.inner.count_tokens(messages)

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
        await adapter.process_activity(
            Activity(type="message", text=text), self.runtime.bot.on_turn
        )
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


async def run_pairs(bot: Bot, pairs: list[dict[str, Any]], filler: list[str]) -> dict[str, Any]:
    hits = {"same": 0, "new": 0}
    counts = {"same": 0, "new": 0}
    slips = 0
    for index, pair in enumerate(pairs):
        user = f"user-{index}"
        await bot.say(f"c{index}", user, pair["say"])
        if pair["where"] == "same":
            await bot.say(f"c{index}", user, filler[index % len(filler)])
            reply = await bot.say(f"c{index}", user, pair["ask"])
        else:
            reply = await bot.say(f"c{index}-new", user, pair["ask"])
        counts[pair["where"]] += 1
        hits[pair["where"]] += recalled(reply, pair["expect"])
        slips += role_slip(reply, pair["expect"])
        print(f"  [{pair['where']}] {pair['ask']!r} -> {reply[:90]!r}", flush=True)
    return {
        "recall_same": f"{hits['same']}/{counts['same']}",
        "recall_new": f"{hits['new']}/{counts['new']}",
        "recall": round((hits["same"] + hits["new"]) / max(1, len(pairs)), 3),
        "role_slips": slips,
    }


async def run_long(bot: Bot, data: dict[str, Any], turns: int) -> bool:
    fact, filler = data["long_fact"], data["filler"]
    await bot.say("long", "long-user", "Hello!")
    await bot.say("long", "long-user", fact["say"])
    for turn in range(3, turns):
        await bot.say("long", "long-user", filler[turn % len(filler)])
    reply = await bot.say("long", "long-user", fact["ask"])
    print(f"  [turn {turns}] {fact['ask']!r} -> {reply[:90]!r}", flush=True)
    return recalled(reply, fact["expect"])


def summary(bot: Bot, model: Recorder, calls_from: int) -> dict[str, Any]:
    model_replies = [r for r in bot.replies if r and not r.startswith("Got it, I'll remember")]
    tokens = model.prompt_tokens[calls_from:]
    return {
        "turns": len(bot.latencies),
        "p50_turn_s": round(statistics.median(bot.latencies), 2),
        "prompt_tokens_mean": round(statistics.mean(tokens), 1) if tokens else 0,
        "replies_checked": len(model_replies),
        "mid_sentence": sum(ends_mid_sentence(r) for r in model_replies),
        "median_reply_words": statistics.median(len(r.split()) for r in model_replies),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--pairs", type=int, default=0, help="only the first N pairs (0: all)")
    parser.add_argument("--long-turns", type=int, default=40)
    parser.add_argument("--configs", default="before,prompt,memory")
    parser.add_argument("--long-in", default="memory", help="configs that run the long chat")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = json.loads(DATA.read_text(encoding="utf-8"))
    pairs = data["pairs"][: args.pairs or None]
    base = Settings.from_env({"BOTLOOM_MODEL": args.model}, env_file=None)
    inner = build_model(base)
    start = getattr(inner, "start", None)
    if start is not None:
        start()
        await inner.wait_ready()  # type: ignore[attr-defined]
    model = Recorder(inner)
    configs = {
        "before": replace(base, system_prompt=OLD_SYSTEM_PROMPT, memory=False),
        "prompt": replace(base, memory=False),
        "memory": base,
    }
    results: dict[str, Any] = {"model": model.name, "max_new_tokens": base.max_new_tokens}
    for name in args.configs.split(","):
        print(f"{name}:", flush=True)
        bot, calls_from = Bot(configs[name], model), len(model.prompt_tokens)
        result = await run_pairs(bot, pairs, data["filler"])
        result.update(summary(bot, model, calls_from))
        if args.long_turns and name in args.long_in.split(","):
            result[f"turn_{args.long_turns}_recalls_turn_2"] = await run_long(
                bot, data, args.long_turns
            )
            endings = summary(bot, model, calls_from)
            result["mid_sentence"], result["replies_checked"] = (
                endings["mid_sentence"],
                endings["replies_checked"],
            )
        results[name] = result
        print(f"  {json.dumps(result)}", flush=True)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    close = getattr(inner, "close", None)
    if close is not None:
        result_close = close()
        if hasattr(result_close, "__await__"):
            await result_close


if __name__ == "__main__":
    asyncio.run(main())
