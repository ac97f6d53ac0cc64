"""`botloom usage --since DATE`: token usage per user and tenant, as a table."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from datetime import date, timedelta
from typing import TextIO

from bot.observability.usage import Usage, UsageStore, today
from bot.settings import Settings
from bot.storage import StorageUnavailable, create_backend
from models.api import close_resource

MAX_DAYS = 366


def add_usage_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    usage = commands.add_parser("usage", help="tokens used per user and tenant (a table)")
    usage.add_argument(
        "--since",
        default="",
        help="first day, YYYY-MM-DD (UTC) or a number of days back such as 7d (default: today)",
    )


def parse_day(value: str, now: date) -> date:
    """YYYY-MM-DD, or `Nd` (N days before `now`); ValueError otherwise or beyond a year back."""
    value = value.strip()
    if not value:
        return now
    day = (
        now - timedelta(days=int(value[:-1])) if value.endswith("d") else date.fromisoformat(value)
    )
    if day > now or (now - day).days > MAX_DAYS:
        raise ValueError(f"{value!r} is not within the last {MAX_DAYS} days")
    return day


def usage_table(rows: Iterable[Usage]) -> str:
    """Per user and tenant over the days read, most tokens first, with a total line."""
    totals: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        sums = totals.setdefault((row.user, row.tenant), [0, 0, 0])
        sums[0] += row.turns
        sums[1] += row.input_tokens
        sums[2] += row.output_tokens
    ordered = sorted(totals.items(), key=lambda item: -(item[1][1] + item[1][2]))
    lines = [(user, tenant or "-", *sums, sums[1] + sums[2]) for (user, tenant), sums in ordered]
    lines.append(
        ("total", "", *(sum(line[i] for line in lines) for i in range(2, 6)))  # type: ignore[misc]
    )
    header = ("user", "tenant", "replies", "input", "output", "tokens")
    width = [max(len(str(x[i])) for x in (header, *lines)) for i in range(6)]
    return "\n".join(
        "  ".join(
            str(cell).ljust(w) if i < 2 else str(cell).rjust(w)
            for i, (cell, w) in enumerate(zip(line, width, strict=True))
        )
        for line in (header, *lines)
    )


async def run_usage(settings: Settings, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        first = parse_day(args.since, today())
    except ValueError as error:
        print(f"botloom: --since: {error}", file=sys.stderr)
        return 2
    backend = create_backend(settings.storage, namespace=settings.storage_namespace, pool_size=2)
    try:
        await backend.open()
        rows = await UsageStore(backend.storage).since(first)
    except StorageUnavailable as error:
        print(f"botloom: {error}", file=sys.stderr)
        return 2
    finally:
        await close_resource(backend.storage)
    print(f"Token usage from {first.isoformat()} to {today().isoformat()} (UTC)", file=out)
    print(usage_table(rows), file=out)
    return 0
