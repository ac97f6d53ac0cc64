"""The mcpServers file's per-tool entries: a malformed one is a McpConfigError naming its path."""

from __future__ import annotations

import pytest

from bot.tools.config import McpConfigError, parse_config


def server(**fields: object) -> dict[str, object]:
    return {"mcpServers": {"shop": {"command": "python", **fields}}}


@pytest.mark.parametrize("entry", ["never", 3, ["approval"]])
def test_a_tool_entry_must_be_an_object(entry: object) -> None:
    with pytest.raises(McpConfigError, match=r"mcpServers\.shop\.tools\.find must be an object"):
        parse_config(server(tools={"find": entry}))


def test_tool_entries_give_their_approval_and_may_be_empty() -> None:
    [config] = parse_config(
        server(approval="always", tools={"find": {"approval": "never"}, "x": None})
    )
    assert config.approval_for("find") == "never"
    assert config.approval_for("x") == "always"


def test_cwd_must_be_a_string() -> None:
    with pytest.raises(McpConfigError, match=r"mcpServers\.shop\.cwd must be a string"):
        parse_config(server(cwd=["/srv"]))
