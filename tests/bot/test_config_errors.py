"""Bad configuration stops a command with one line, `botloom: <reason>`, and exit status 2: values
out of range are refused when settings are read, and the commands that build the app turn the
typed configuration errors (storage URL, MCP config) into that line, never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bot.cli import main
from bot.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("BOTLOOM_LOG_LEVEL", "verbose", "BOTLOOM_LOG_LEVEL must be one of"),
        ("BOTLOOM_PORT", "70000", "BOTLOOM_PORT must be a port number"),
        ("BOTLOOM_MODEL_SERVER_PORT", "0", "BOTLOOM_MODEL_SERVER_PORT must be a port number"),
        ("BOTLOOM_MAX_BODY_BYTES", "0", "BOTLOOM_MAX_BODY_BYTES must be more than 0"),
        ("BOTLOOM_LOCK_LEASE_S", "0", "BOTLOOM_LOCK_LEASE_S must be more than 0"),
        ("BOTLOOM_TURN_TIMEOUT_S", "nan", "BOTLOOM_TURN_TIMEOUT_S must be more than 0"),
        ("BOTLOOM_MAX_UPLOAD_MB", "-1", "BOTLOOM_MAX_UPLOAD_MB must be more than 0"),
    ],
)
def test_out_of_range_settings_are_refused_by_name(name: str, value: str, reason: str) -> None:
    with pytest.raises(SettingsError, match=reason):
        Settings.from_env({name: value}, env_file=None)


def test_a_storage_namespace_is_checked_where_a_server_uses_it() -> None:
    """PostgreSQL and Redis paste it into table names and keys; SQLite and memory never read it,
    so a namespace that started a SQLite bot before still does."""
    for url in ("postgresql://bot@db.example/botloom", "redis://cache.example:6379/0"):
        with pytest.raises(SettingsError, match="BOTLOOM_STORAGE_NAMESPACE: storage namespace"):
            Settings.from_env(
                {"BOTLOOM_STORAGE": url, "BOTLOOM_STORAGE_NAMESPACE": "Bot"}, env_file=None
            )
    settings = Settings.from_env(
        {"BOTLOOM_STORAGE": "sqlite:///data/bot.db", "BOTLOOM_STORAGE_NAMESPACE": "my-bot"},
        env_file=None,
    )
    assert settings.storage_namespace == "my-bot"


def test_log_levels_are_read_in_any_case() -> None:
    settings = Settings.from_env({"BOTLOOM_LOG_LEVEL": "warning"}, env_file=None)
    assert settings.log_level == "WARNING"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """`botloom` run in-process in an empty folder, with only the settings the test gives."""
    for name in list(os.environ):
        if name.startswith(("BOTLOOM_", "Microsoft")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BOTLOOM_STORAGE", "memory://")
    monkeypatch.setenv("BOTLOOM_MODEL", "fake")
    monkeypatch.setenv("BOTLOOM_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("bot.server.stop_signal", stopped_at_once)  # a serve that starts ends
    return tmp_path


async def stopped_at_once() -> None:
    """A stop signal that has already come: `botloom serve` that got past its checks returns."""


def refusal(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith("botloom: ")
    return line


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BOTLOOM_LOG_LEVEL", "verbose"),
        ("BOTLOOM_PORT", "70000"),
        ("BOTLOOM_MAX_BODY_BYTES", "0"),
        ("BOTLOOM_LOCK_LEASE_S", "0"),
    ],
)
def test_serve_refuses_a_bad_setting_in_one_line(
    cli_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["serve"]) == 2
    assert name in refusal(capsys)


@pytest.mark.parametrize("command", ["serve", "chat"])
@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        (
            "BOTLOOM_STORAGE",
            "mysql://bot:hunter2-secret@db.example/botloom",
            "unsupported storage URL scheme 'mysql'",
        ),
        ("BOTLOOM_MCP_CONFIG", "nowhere/mcp.json", "cannot read the MCP config nowhere/mcp.json"),
    ],
)
def test_a_bad_storage_url_or_mcp_config_is_refused_in_one_line_without_secrets(
    cli_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    name: str,
    value: str,
    said: str,
) -> None:
    monkeypatch.setenv(name, value)
    assert main([command]) == 2
    line = refusal(capsys)
    assert said in line
    assert "hunter2-secret" not in line


def test_an_mcp_tool_entry_that_is_not_an_object_is_named(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {"mcpServers": {"shop": {"command": "python", "tools": {"t": "never"}}}}
    Path("mcp.json").write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.setenv("BOTLOOM_MCP_CONFIG", "mcp.json")
    assert main(["chat"]) == 2
    assert "mcpServers.shop.tools.t must be an object" in refusal(capsys)


def test_a_port_argument_out_of_range_is_a_usage_error(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", "70000"])
    assert exited.value.code == 2
    assert "'70000' is not a port number (1 to 65535)" in capsys.readouterr().err
