"""The pytest plugin: scripts under the configured folders are tests with readable failures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_scripts_in_the_configured_folder_are_collected_and_reported(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = -p bot.scripted.pytest_plugin\nbotloom_scripts = scripts\n",
        encoding="utf-8",
    )
    scripts, elsewhere = tmp_path / "scripts", tmp_path / "elsewhere"
    scripts.mkdir()
    elsewhere.mkdir()
    (scripts / "good.chat").write_text("user: hi\nbot: fake: hi\n", encoding="utf-8")
    (scripts / "wrong.chat").write_text("user: hi\nbot: fake: bye\n", encoding="utf-8")
    (scripts / "broken.chat").write_text("user: hi\nbot: [Suggestions]\n", encoding="utf-8")
    (elsewhere / "ignored.chat").write_text("user: hi\nbot: nothing\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--botloom-model", "fake", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "2 failed, 1 passed" in out
    assert "ignored.chat" not in out
    assert re.search(r"_+ script wrong\.chat _+", out), "the failure is titled by the script"
    assert "scripts/wrong.chat:2: the bot's reply does not match the script (text)" in out
    assert "  expected: fake: bye\n  actual:   fake: hi\n" in out
    assert "  conversation up to here:\n    user: hi\n    bot: [Typing]\n    bot: fake: hi" in out
    assert "scripts/broken.chat:2: malformed command [Suggestions]" in out
