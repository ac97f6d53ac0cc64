"""`botloom test PATH…`: run scripted conversations from the command line.

Exit status: 0 when every script passed, 1 when one failed or is malformed, 2 when there is
nothing to run (a path that does not exist, a folder without scripts).
"""

from __future__ import annotations

import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

from bot.scripted.errors import ScriptError, ScriptFailure
from bot.scripted.model_choice import ModelChoice, ScriptModels
from bot.scripted.runner import SUFFIXES, run_file
from bot.settings import Settings
from models import ModelError


@dataclass(frozen=True)
class Outcome:
    path: Path
    status: Literal["passed", "failed", "error"]
    seconds: float
    message: str = ""  # the first line of the report
    details: str = ""  # the whole report


def find_scripts(paths: Sequence[Path]) -> list[Path]:
    """The files named and the scripts under the folders named; ValueError for a missing path."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise ValueError(f"no such file or folder: {path}")
    return found


async def run_tests(
    settings: Settings,
    paths: Sequence[Path],
    *,
    model: ModelChoice | str = ModelChoice.FAKE,
    junit_xml: Path | None = None,
    out: TextIO | None = None,
) -> int:
    """Replay every script under `paths`, report each to `out` (stdout), return the exit status."""
    out = out or sys.stdout
    try:
        scripts = find_scripts(paths)
    except ValueError as error:
        print(f"botloom test: {error}", file=sys.stderr)
        return 2
    if not scripts:
        print(
            f"botloom test: no {' or '.join(SUFFIXES)} files under {', '.join(map(str, paths))}",
            file=sys.stderr,
        )
        return 2
    models = ScriptModels(model, settings)
    outcomes = []
    try:
        for path in scripts:
            outcome = await _run_one(path, settings, models)
            outcomes.append(outcome)
            print(f"{outcome.status.upper():6} {path}", file=out)
            if outcome.details:
                print(_indent(outcome.details), file=out)
    finally:
        await models.aclose()
    counts = {
        status: sum(o.status == status for o in outcomes)
        for status in ("passed", "failed", "error")
    }
    seconds = sum(o.seconds for o in outcomes)
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    print(f"{summary} in {seconds:.2f} s (model: {models.choice})", file=out)
    if junit_xml is not None:
        write_junit_xml(junit_xml, outcomes)
    return 0 if counts["passed"] == len(outcomes) else 1


async def _run_one(path: Path, settings: Settings, models: ScriptModels) -> Outcome:
    start = time.perf_counter()
    try:
        await run_file(path, settings, models)
    except ScriptFailure as failure:
        return Outcome(
            path, "failed", time.perf_counter() - start, failure.reason, failure.render()
        )
    except ScriptError as error:
        return Outcome(path, "error", time.perf_counter() - start, str(error), str(error))
    except ModelError as error:  # the real model did not load
        message = f"{path}: the model is not available: {error}"
        return Outcome(path, "error", time.perf_counter() - start, message, message)
    return Outcome(path, "passed", time.perf_counter() - start)


def write_junit_xml(path: Path, outcomes: Sequence[Outcome]) -> None:
    """A JUnit XML report, one testcase per script, as CI systems read it."""
    suite = ET.Element(
        "testsuite",
        name="botloom test",
        tests=str(len(outcomes)),
        failures=str(sum(o.status == "failed" for o in outcomes)),
        errors=str(sum(o.status == "error" for o in outcomes)),
        skipped="0",
        time=f"{sum(o.seconds for o in outcomes):.3f}",
    )
    for outcome in outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_classname(outcome.path),
            name=outcome.path.name,
            file=str(outcome.path),
            time=f"{outcome.seconds:.3f}",
        )
        if outcome.status != "passed":
            tag = "failure" if outcome.status == "failed" else "error"
            element = ET.SubElement(case, tag, message=outcome.message, type=tag)
            element.text = outcome.details
    root = ET.Element("testsuites")
    root.append(suite)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _classname(path: Path) -> str:
    """`tests.scripts` for tests/scripts/help.chat, as pytest names test modules."""
    folder = path.resolve().parent
    if folder.is_relative_to(Path.cwd()):
        folder = folder.relative_to(Path.cwd())
    return ".".join(part for part in folder.parts if part != folder.anchor) or "scripts"


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else "" for line in text.split("\n"))
