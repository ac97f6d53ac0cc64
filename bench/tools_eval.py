"""The tool router on the embedded default: requests in, the tool call the bot makes out.

    .venv/bin/python bench/tools_eval.py [--set calibration|blind] [--limit N]

Each request is a new conversation; its turns go one by one through the real tool stage
(dialogs/answer/tool_stage.py) with the real runner (bot/tools) over the demo MCP servers of
examples/mcp/servers.py started over stdio, the embedding model all-MiniLM-L6-v2 and the
embedded SmolLM2-135M-Instruct filling arguments under llguidance. `--set calibration`
(bench/data/tools/calibration.jsonl, written for this work) is what the threshold was chosen on;
`--set blind` (bench/data/blind/tools/, written by a helper that never saw the code) is run once,
never tuned on. A request passes when the last turn calls the expected tool (a read tool run,
or a write tool's approval asked) with exactly the expected arguments (free-text ones: present
and sharing a content word), or, for the no-tool requests, calls none (nor asks for one's
arguments). Writes run without approval are counted from the audit log. Printed, and saved to
bench/results/tools-eval-SET.json: rates by kind, and the routing-and-arguments step's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

from botbuilder.core import ConversationState, MemoryStorage, TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, ConversationAccount

from bot.tools.approvals import PendingApprovals
from bot.tools.audit import AuditLog
from bot.tools.config import parse_config
from bot.tools.runner import McpToolRunner
from bot.tools.servers import McpServers
from bot.tools.setup import LazyArguments
from dialogs.answer.stages import TurnDraft
from dialogs.answer.tool_stage import ToolStage
from dialogs.tools.arguments import content_words
from dialogs.tools.routing import ToolRouter
from models import ChatMessage
from models.embeddings import HFEmbeddingModel

ROOT = Path(__file__).resolve().parent.parent
SETS = {
    "calibration": ROOT / "bench/data/tools/calibration.jsonl",
    "blind": ROOT / "bench/data/blind/tools/requests.jsonl",
}
TODAY = date(2026, 12, 7)  # the requests' today (bench/data/blind/tools/catalogue.md)


class Recording(McpToolRunner):
    """The real runner, noting each call the stage asks for."""

    calls: list[tuple[str, dict]]

    async def run(self, turn_context, call):  # type: ignore[no-untyped-def]
        self.calls.append((call.tool.name, dict(call.arguments)))
        return await super().run(turn_context, call)


class TimedRouter(ToolRouter):
    spent: list[float]

    async def choose_in_context(self, text, previous, tools):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return await super().choose_in_context(text, previous, tools)
        finally:
            self.spent.append(time.perf_counter() - start)

    async def choose(self, text, tools):  # type: ignore[no-untyped-def]
        return await ToolRouter.choose(self, text, tools)

    async def fill(self, tool, text, known=None):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return await super().fill(tool, text, known)
        finally:
            self.spent.append(time.perf_counter() - start)


def matches(got: dict, expected: dict, free_text: list[str]) -> bool:
    if set(got) != set(expected):
        return False
    for name, want in expected.items():
        have = got[name]
        if name in free_text:
            if not (isinstance(have, str) and content_words(have) & content_words(str(want))):
                return False
        elif isinstance(want, int | float) and not isinstance(want, bool):
            if not isinstance(have, int | float) or float(have) != float(want):
                return False
        elif str(have).strip().lower() != str(want).strip().lower():
            return False
    return True


async def run(set_name: str, limit: int | None) -> dict:
    rows = [json.loads(line) for line in SETS[set_name].read_text().splitlines() if line.strip()]
    rows = rows[:limit] if limit else rows
    servers = McpServers(
        parse_config(
            {
                "mcpServers": {
                    name: {
                        "command": sys.executable,
                        "args": [str(ROOT / "examples/mcp/servers.py"), name],
                    }
                    for name in ("shop", "helpdesk", "office")
                }
            }
        )
    )
    servers.start()
    await servers.wait_tried(60)
    audit_path = Path(tempfile.mkdtemp()) / "audit.jsonl"
    storage = MemoryStorage()
    runner = Recording(servers, PendingApprovals(storage), AuditLog(audit_path))
    runner.calls = []
    router = TimedRouter(
        HFEmbeddingModel(), LazyArguments(None, Path.home() / ".cache/botloom"), today=lambda: TODAY
    )
    router.spent = []
    state = ConversationState(storage)
    stage = ToolStage(runner, router, state.create_property("ToolCallWaiting"), turn_timeout_s=600)
    tools = runner.tools()
    print(f"{len(tools)} tools up; down: {servers.down() or 'none'}")
    per_turn: list[float] = []
    results = []
    adapter = TestAdapter()
    for row in rows:
        history: list[ChatMessage] = []
        for index, text in enumerate(row["turns"]):
            activity = Activity(
                type=ActivityTypes.message,
                text=text,
                channel_id="console",
                conversation=ConversationAccount(id=f"bench-{row['id']}"),
                from_property=ChannelAccount(id=f"user-{row['id']}"),
                recipient=ChannelAccount(id="bot"),
                id=f"{row['id']}-{index}",
            )
            context = TurnContext(adapter, activity)
            runner.calls.clear()
            router.spent.clear()
            draft = TurnDraft(text, history=list(history), budget_tokens=1000)
            await stage.prepare(context, draft)
            history += [ChatMessage("user", text), ChatMessage("assistant", draft.answer or "OK.")]
            await state.save_changes(context)
            per_turn.append(sum(router.spent))
        calls = list(runner.calls)
        asked = draft.answer is not None and draft.answer.startswith("To ")
        expect = row["expect"]
        if expect is None:
            ok = not calls and not asked
        else:
            ok = (
                len(calls) == 1
                and calls[0][0] == expect["tool"]
                and matches(calls[0][1], expect["arguments"], row.get("free_text", []))
            )
        results.append(
            {
                "id": row["id"],
                "kind": row.get("kind", ""),
                "ok": ok,
                "calls": calls,
                "asked": asked,
                "expect": expect,
            }
        )
        print(
            f"{'PASS' if ok else 'FAIL'} {row['id']} {row.get('kind', ''):13s} "
            f"{calls or ('asked' if asked else '-')}"
            f"  want {expect and (expect['tool'], expect['arguments'])}"
        )
    await servers.close()
    audit = (
        [json.loads(line) for line in audit_path.read_text().splitlines()]
        if audit_path.exists()
        else []
    )
    writes = {t.name for t in tools if not t.read_only}
    unapproved = sum(1 for e in audit if e["tool"] in writes and e["approval"] != "approved")
    kinds = Counter(r["kind"] for r in results)
    passed = Counter(r["kind"] for r in results if r["ok"])
    tool_rows = [r for r in results if r["expect"]]
    none_rows = [r for r in results if not r["expect"]]
    timings = sorted(per_turn)
    right_tool = sum(1 for r in tool_rows if r["calls"] and r["calls"][0][0] == r["expect"]["tool"])
    summary = {
        "set": set_name,
        "requests": len(results),
        "right_tool_and_arguments": f"{sum(r['ok'] for r in tool_rows)}/{len(tool_rows)}",
        "right_tool": f"{right_tool}/{len(tool_rows)}",
        "no_tool_requests_with_a_call": f"{sum(not r['ok'] for r in none_rows)}/{len(none_rows)}",
        "write_calls_run_without_approval": unapproved,
        "by_kind": {k: f"{passed[k]}/{n}" for k, n in sorted(kinds.items())},
        "routing_s_per_turn_p50": round(statistics.median(timings), 3),
        "routing_s_per_turn_p95": round(timings[int(0.95 * (len(timings) - 1))], 3),
        "model": "SmolLM2-135M-Instruct (embedded default) + all-MiniLM-L6-v2, CPU",
    }
    print(json.dumps(summary))
    out = ROOT / f"bench/results/tools-eval-{set_name}.json"
    out.write_text(json.dumps({"summary": summary, "results": results}, indent=1) + "\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=sorted(SETS), default="calibration")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    asyncio.run(run(args.set, args.limit))


if __name__ == "__main__":
    main()
