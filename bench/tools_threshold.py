"""The tool router's threshold, chosen on bench/data/tools/calibration.jsonl (never on the blind
set): each request's best tool score (dialogs/tools/routing.py: similarity plus argument-shape
evidence) for the last turn; the threshold is the lowest that keeps every no-tool request below
it, rounded up to 0.01, and the tool requests it would let through are counted.

    .venv/bin/python bench/tools_threshold.py
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples/mcp"))

from servers import SERVERS  # noqa: E402

from dialogs.tools.api import ToolSpec  # noqa: E402
from dialogs.tools.routing import ToolRouter  # noqa: E402
from models.embeddings import HFEmbeddingModel  # noqa: E402


async def main() -> None:
    tools = []
    for server, make in SERVERS.items():
        for t in await make().list_tools():
            read_only = bool(t.annotations and t.annotations.read_only_hint)
            tools.append(
                ToolSpec(server, t.name, t.description or "", t.input_schema, read_only, "auto")
            )
    router = ToolRouter(HFEmbeddingModel(), None, today=lambda: date(2026, 12, 7))  # type: ignore[arg-type]
    rows = [
        json.loads(x)
        for x in (ROOT / "bench/data/tools/calibration.jsonl").read_text().splitlines()
    ]
    tool_scores, none_scores = [], []
    for row in rows:
        best = max(await router.scores(row["turns"][-1], tools))
        (tool_scores if row["expect"] else none_scores).append(best)
    threshold = math.ceil(max(none_scores) * 100 + 1e-9) / 100
    passed = sum(s >= threshold for s in tool_scores)
    print(
        f"no-tool max {max(none_scores):.3f}; threshold {threshold:.2f}; "
        f"tool requests at or above it: {passed}/{len(tool_scores)}"
    )
    print(
        json.dumps({"threshold": threshold, "tool_requests_above": f"{passed}/{len(tool_scores)}"})
    )


if __name__ == "__main__":
    asyncio.run(main())
