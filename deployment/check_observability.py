#!/usr/bin/env python3
"""deploy-check's rules for deployment/observability/ (issue 29): what a JSON parser or the
compose schema cannot see.

    check_observability.py dashboard DASHBOARD.json SOURCE.py...
        panels well formed, and every botloom_ metric one that a SOURCE defines
    check_observability.py compose CONFIG.json DEPLOYMENT_DIR
        the observability profile (`docker compose --profile observability config` output)
    check_observability.py rules DASHBOARD.json
        the panels' PromQL as a rules file, for `promtool check rules`

Prints one line per problem and exits 1 if there is any (`rules` prints the rules file).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

METRIC = re.compile(r"\bbotloom_[a-z0-9_]+\b")
DEFINED = re.compile(r"[\"'](botloom_[a-z0-9_]+)[\"']")
# What prometheus-client adds to a defined name: counters' _total (and _created), histograms'
# _bucket, _sum and _count.
SUFFIXES = ("", "_total", "_created", "_bucket", "_sum", "_count")
PROFILE_SERVICES = {"prometheus", "grafana", "jaeger"}
# Grafana's own variables, replaced by values Prometheus accepts for `promtool check rules`.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "1m"}


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def dashboard(path: Path, *sources: Path) -> Iterator[str]:
    try:
        board = json.loads(path.read_text())
    except ValueError as error:
        yield f"{path.name}: not JSON: {error}"
        return
    defined = {m for source in sources for m in DEFINED.findall(source.read_text())}
    if not defined:
        yield f"no botloom_ metric is defined in {', '.join(s.name for s in sources)}"
    exposed = {name + suffix for name in defined for suffix in SUFFIXES}
    for key in ("uid", "title", "panels", "schemaVersion"):
        if key not in board:
            yield f"{path.name}: no {key}"
    ids: set[int] = set()
    used: set[str] = set()
    for panel in _panels(board):
        where = f"{path.name}: panel {panel.get('id')} ({panel.get('title', 'untitled')})"
        if panel.get("id") in ids:
            yield f"{where}: id used twice"
        ids.add(panel.get("id"))
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")):
            yield f"{where}: gridPos needs integer h, w, x, y"
        elif grid["x"] + grid["w"] > 24:
            yield f"{where}: wider than the 24-column grid"
        if panel.get("type") == "row":
            continue
        if not panel.get("title"):
            yield f"{where}: no title"
        targets = panel.get("targets") or []
        if not targets:
            yield f"{where}: no query"
        for target in targets:
            expr = target.get("expr", "")
            if not expr:
                yield f"{where}: target {target.get('refId')} has no expr"
            if expr.count("(") != expr.count(")"):
                yield f"{where}: unbalanced parentheses in {expr}"
            for name in METRIC.findall(expr):
                used.add(name)
                if name not in exposed:
                    yield f"{where}: {name} is not a metric botloom exposes"
    if not used:
        yield f"{path.name}: no panel queries a botloom_ metric"


def compose(path: Path, deployment: Path) -> Iterator[str]:
    """The profile's services exist, their images are pinned, their ports are on loopback, the
    files they mount exist, and Prometheus scrapes the bot's and the model server's /metrics."""
    project = json.loads(path.read_text())
    services = project["services"]
    for name in sorted(PROFILE_SERVICES - set(services)):
        yield f"observability profile: no service {name}"
    for name in sorted(PROFILE_SERVICES & set(services)):
        service = services[name]
        image = service.get("image", "")
        if ":" not in image or image.endswith(":latest"):
            yield f"service {name}: image {image!r} is not pinned to a version"
        for port in service.get("ports") or []:
            if port.get("published") and port.get("host_ip") not in ("127.0.0.1", "::1"):
                yield f"service {name}: port {port.get('published')} is published beyond loopback"
        for volume in service.get("volumes") or []:
            if volume.get("type") == "bind" and not Path(volume["source"]).exists():
                yield f"service {name}: mounts {volume['source']}, which does not exist"
    yield from _scrapes(deployment / "observability" / "prometheus.yml", services)


def _scrapes(config: Path, services: dict[str, Any]) -> Iterator[str]:
    import yaml

    scrape = yaml.safe_load(config.read_text()).get("scrape_configs") or []
    targets = {
        target
        for job in scrape
        if job.get("metrics_path", "/metrics") == "/metrics"
        for static in job.get("static_configs") or []
        for target in static.get("targets") or []
    }
    for name, service in services.items():
        command = (service.get("command") or [None])[0]
        if command not in ("serve", "model-server") or service.get("profiles"):
            continue
        environment = service.get("environment") or {}
        port = (
            environment.get("BOTLOOM_MODEL_SERVER_PORT", "8000")
            if command == "model-server"
            else environment.get("BOTLOOM_PORT", "3978")
        )
        if f"{name}:{port}" not in targets:
            yield f"{config.name}: Prometheus does not scrape {name}:{port}/metrics"


def rules(path: Path) -> Iterator[str]:
    """Not problems: the rules file (one recording rule per panel query), printed."""
    board = json.loads(path.read_text())
    recorded = []
    for panel in _panels(board):
        for target in panel.get("targets") or []:
            expr = target.get("expr", "")
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            recorded.append(
                {"record": f"dashboard:panel{panel['id']}:{target['refId']}", "expr": expr}
            )
    print(json.dumps({"groups": [{"name": "dashboard", "rules": recorded}]}, indent=2))
    return iter(())


COMMANDS = {"dashboard": dashboard, "compose": compose, "rules": rules}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    problems = list(COMMANDS[argv[0]](*[Path(a) for a in argv[1:]]))
    for problem in problems:
        print(f"observability: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
