"""pytest plugin: every `*.chat` and `*.transcript` under the `botloom_scripts` folders is a test.

Enable it with `-p bot.scripted.pytest_plugin` (botloom's pyproject.toml does, in addopts) and
name the folders in the ini file: `botloom_scripts = ["tests/scripts"]`. The model is the fake
unless `botloom_model` (ini) or `--botloom-model` says `replies` or `real` (which loads the
configured model for each script; `botloom test` loads it once per run). A failing script
reports the expected and the actual reply and the conversation up to it; a malformed one reports
`file:line` and the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.scripted.errors import ScriptError, ScriptFailure
from bot.scripted.model_choice import ModelChoice, ScriptModels
from bot.scripted.runner import SUFFIXES, run_file
from bot.settings import Settings


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "botloom_scripts",
        type="paths",
        default=[],
        help="folders whose *.chat and *.transcript files run as scripted conversations",
    )
    parser.addini("botloom_model", default="fake", help="fake (default), replies or real")
    parser.getgroup("botloom").addoption(
        "--botloom-model",
        choices=[choice.value for choice in ModelChoice],
        help="the model scripted conversations talk to (overrides the botloom_model ini value)",
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in SUFFIXES:
        return None
    folders: list[Path] = parent.config.getini("botloom_scripts")
    if any(file_path.is_relative_to(folder) for folder in folders):
        return ScriptFile.from_parent(parent, path=file_path)
    return None


class ScriptFile(pytest.File):
    def collect(self) -> Iterator[ScriptItem]:
        yield ScriptItem.from_parent(self, name=self.path.name)


class ScriptItem(pytest.Item):
    """One script, replayed on its own event loop against a fresh bot (state in memory)."""

    def runtest(self) -> None:
        choice = ModelChoice(
            self.config.getoption("botloom_model") or self.config.getini("botloom_model")
        )
        # Fake and scripted runs use the defaults, so they behave alike on every machine.
        settings = Settings.from_env() if choice is ModelChoice.REAL else Settings()
        asyncio.run(_run(self.path, settings, ScriptModels(choice, settings)))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ScriptFailure):
            return excinfo.value.render()
        if isinstance(excinfo.value, ScriptError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"script {self.name}"


async def _run(path: Path, settings: Settings, models: ScriptModels) -> None:
    try:
        await run_file(path, settings, models)
    finally:
        await models.aclose()
