"""The default system prompt and sampling on the embedded default: role, answer and shortness.

    .venv/bin/python bench/prompt_eval.py [--quick] [--repeats 2] [--json F]

Runs the held-out set tests/data/prompt_eval.json (no prompt, rule or test uses it) through the
whole bot at the default reply cap, for each configuration in CONFIGS, side by side in one
process (the engine batches them). Each item is one conversation; its last reply is scored:

- answered: it contains one of the item's expected words;
- short: at most SHORT_WORDS words where the user did not ask for more (items marked short);
- in role: it does not claim the user's name or city as its own ("I'm Rahul", "I live in Pune")
  and does not speak as the user ("User:").

--repeats runs every item that many times per configuration (sampling varies). --quick: the
first 10 items, once. Not a test: figures vary with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.memory import Bot, Recorder
from bot.model_setup import build_model
from bot.settings import DEFAULT_SYSTEM_PROMPT, Settings
from models.api import close_resource

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "prompt_eval.json"
SHORT_WORDS = 60
BEFORE_PROMPT = (  # the default before issue 14's tuning
    "You are botloom, a friendly and concise assistant in a chat. "
    "Answer in the user's language, in a few sentences."
)
SHORT_PROMPT = (
    "You are botloom, a helpful AI assistant. "
    "Answer the user's question directly, in one or two short sentences."
)
ONE_SHOT_PROMPT = (  # one demonstration of a short, direct answer
    "You are botloom, a helpful AI assistant. Keep answers short and to the point.\n"
    "Example:\nUser: What is the largest ocean?\nAssistant: The Pacific is the largest ocean."
)
ROLE_PROMPT = (
    "You are botloom, an AI assistant talking with a user. "
    "Give a short, direct answer to the user's last message."
)
NATIVE_PROMPT = (  # worded like the model's own default ("a helpful AI assistant named SmolLM")
    "You are a helpful AI assistant named botloom. "
    "Answer the user's question directly, in one or two short sentences."
)
BEFORE = {"system_prompt": BEFORE_PROMPT, "temperature": 0.3, "repetition_penalty": 1.1}
CONFIGS: dict[str, dict[str, Any]] = {  # what each configuration changes in the settings
    "before": BEFORE,
    "default": {},  # bot/settings.py as it is now
    "short prompt": {"system_prompt": SHORT_PROMPT},
    "role prompt": {"system_prompt": ROLE_PROMPT},
    "short prompt + greedy": {"system_prompt": SHORT_PROMPT, "temperature": 0.0},
    "before + greedy": {**BEFORE, "temperature": 0.0},
    "native prompt": {"system_prompt": NATIVE_PROMPT},
    "one-shot prompt": {"system_prompt": ONE_SHOT_PROMPT},
    "one-shot prompt + greedy": {"system_prompt": ONE_SHOT_PROMPT, "temperature": 0.0},
    "native prompt + greedy": {"system_prompt": NATIVE_PROMPT, "temperature": 0.0},
    "native prompt + t0.2": {"system_prompt": NATIVE_PROMPT, "temperature": 0.2},
}


def in_role(reply: str, not_self: list[str]) -> bool:
    lowered = reply.lower()
    if lowered.lstrip().startswith(("user:", "me:")):
        return False
    leads = ("my name is", "i am", "i'm", "i live in", "i am from", "i'm from", "call me")
    return not any(f"{lead} {word.lower()}" in lowered for word in not_self for lead in leads)


def score(item: dict[str, Any], reply: str) -> dict[str, Any]:
    words = len(reply.split())
    return {
        "answered": any(word.lower() in reply.lower() for word in item["expect"]),
        "short": words <= SHORT_WORDS if item["short"] else None,
        "in_role": in_role(reply, item.get("not_self", [])),
        "words": words,
    }


async def run_item(bot: Bot, tag: str, item: dict[str, Any], limit: asyncio.Semaphore) -> dict:
    async with limit:
        reply = ""
        for text in item["turns"]:
            reply = await bot.say(tag, f"user-{tag}", text)
    return {**score(item, reply), "reply": reply}


def summary(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    shorts = [o["short"] for o in outcomes if o["short"] is not None]
    return {
        "answered": f"{sum(o['answered'] for o in outcomes)}/{len(outcomes)}",
        "short": f"{sum(shorts)}/{len(shorts)}",
        "in_role": f"{sum(o['in_role'] for o in outcomes)}/{len(outcomes)}",
        "median_words": statistics.median(o["words"] for o in outcomes),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--only", help="comma-separated configuration names")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    items = json.loads(DATA.read_text(encoding="utf-8"))["items"]
    repeats = 1 if args.quick else args.repeats
    items = items[:10] if args.quick else items
    environ = {"BOTLOOM_MODEL": args.model, "BOTLOOM_GENERATION_TIMEOUT_S": "1800"}
    base = Settings.from_env(environ, env_file=None)
    inner = build_model(base)
    inner.start()
    await inner.wait_ready()
    model = Recorder(inner)
    names = args.only.split(",") if args.only else list(CONFIGS)
    bots = {name: Bot(replace(base, memory=False, **CONFIGS[name]), model) for name in names}
    limit = asyncio.Semaphore(args.concurrency)
    jobs = {
        name: asyncio.gather(
            *(
                run_item(bot, f"{n}-{r}", item, limit)
                for r in range(repeats)
                for n, item in enumerate(items)
            )
        )
        for name, bot in bots.items()
    }
    outcomes = dict(zip(jobs, await asyncio.gather(*jobs.values()), strict=True))
    results: dict[str, Any] = {
        "model": model.name,
        "max_new_tokens": base.max_new_tokens,
        "default_system_prompt": DEFAULT_SYSTEM_PROMPT,
        "defaults": {"temperature": base.temperature, "top_p": base.top_p,
                     "repetition_penalty": base.repetition_penalty},
    }  # fmt: skip
    for name, outcome in outcomes.items():
        results[name] = {**summary(outcome), "changes": CONFIGS[name]}
        for o in outcome:
            print(f"  {name} answered={o['answered']} {o['reply'][:90]!r}", flush=True)
    print(json.dumps(results, indent=2))
    results["replies"] = {name: [o["reply"] for o in outcome] for name, outcome in outcomes.items()}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    await close_resource(inner)


if __name__ == "__main__":
    asyncio.run(main())
