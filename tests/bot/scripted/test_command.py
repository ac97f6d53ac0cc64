"""`botloom test PATH…`: exit status, the report, JUnit XML, the model per run."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bot.cli import main

GOOD = "user: hello\nbot: fake: hello\n"
WRONG = "user: hello\nbot: fake: goodbye\n"
BROKEN = "user: hello\nbot: [Delay=soon] fake: hello\n"


def scripts(**texts: str) -> Path:
    """Scripts in ./scripts (the test runs in an empty folder); returns the relative path."""
    folder = Path("scripts")
    folder.mkdir(exist_ok=True)
    for name, text in texts.items():
        (folder / f"{name}.chat").write_text(text, encoding="utf-8")
    return folder


def test_passing_scripts_exit_0(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = scripts(good=GOOD, also_good="user: /weather\nbot: I don't*\n")
    assert main(["test", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "PASSED scripts/also_good.chat" in out and "PASSED scripts/good.chat" in out
    assert "2 passed in " in out and "(model: fake)" in out


def test_a_failing_script_exits_1_with_the_diff(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = scripts(good=GOOD, wrong=WRONG)
    assert main(["test", str(folder / "good.chat"), str(folder / "wrong.chat")]) == 1
    out = capsys.readouterr().out
    assert "FAILED scripts/wrong.chat" in out
    assert "scripts/wrong.chat:2: the bot's reply does not match the script (text)" in out
    assert "- fake: goodbye" in out and "+ fake: hello" in out
    assert "1 passed, 1 failed" in out


def test_a_malformed_script_exits_1_naming_file_and_line(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = scripts(broken=BROKEN)
    assert main(["test", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "ERROR  scripts/broken.chat" in out
    assert "scripts/broken.chat:2: write [Delay=<milliseconds>], e.g. [Delay=500]" in out
    assert "1 error in" in out


@pytest.mark.parametrize("make_folder", [False, True])
def test_nothing_to_run_exits_2(
    cli_env: Path, capsys: pytest.CaptureFixture[str], make_folder: bool
) -> None:
    if make_folder:
        (cli_env / "empty").mkdir()
    assert main(["test", "empty"]) == 2
    assert "botloom test: " in capsys.readouterr().err


def test_junit_xml_report(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = scripts(good=GOOD, wrong=WRONG, broken=BROKEN)
    report = Path("reports") / "scripts.xml"
    assert main(["test", str(folder), "--junit-xml", str(report)]) == 1
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"good.chat", "wrong.chat", "broken.chat"}
    assert cases["good.chat"].get("classname") == "scripts"
    assert list(cases["good.chat"]) == []
    failure = cases["wrong.chat"].find("failure")
    assert failure is not None
    assert failure.get("message") == "the bot's reply does not match the script (text)"
    assert "+ fake: hello" in (failure.text or "")
    error = cases["broken.chat"].find("error")
    assert error is not None and "broken.chat:2: write [Delay=" in (error.get("message") or "")


def test_scripted_replies_listed_beside_the_script(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = scripts(capital="user: France?\nbot: Paris.\n")
    (folder / "capital.replies").write_text("Paris.\n", encoding="utf-8")
    assert main(["test", str(folder), "--model", "replies"]) == 0
    assert main(["test", str(folder)]) == 1, "the fake answers 'fake: France?'"


def test_the_configured_model(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # BOTLOOM_MODEL=fake (cli_env) makes the configured model the echoing fake
    folder = scripts(good=GOOD)
    assert main(["test", str(folder), "--model", "real"]) == 0
    assert "(model: real)" in capsys.readouterr().out
