"""The .env file is read with python-dotenv's rules (issue 12, item 6): comments after a value,
quotes, escapes in double quotes and `export` lines mean what dotenv users expect."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings, read_env_file


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("MicrosoftAppPassword=abc # comment", "abc"),
        ("MicrosoftAppPassword=abc#not-a-comment", "abc#not-a-comment"),
        ('MicrosoftAppPassword="abc # kept"  # comment', "abc # kept"),
        ("MicrosoftAppPassword='a \"b\" c' # comment", 'a "b" c'),
        ('MicrosoftAppPassword="say \\"hi\\""', 'say "hi"'),
        ('MicrosoftAppPassword="two\\nlines"', "two\nlines"),
        ("MicrosoftAppPassword='no \\n escapes'", "no \\n escapes"),
        ("export MicrosoftAppPassword=abc", "abc"),
        ("  export   MicrosoftAppPassword = abc  ", "abc"),
        ("MicrosoftAppPassword=", ""),
    ],
)
def test_values_follow_dotenv_rules(tmp_path: Path, line: str, value: str) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"# botloom\n\n{line}\nBOTLOOM_PORT=4000\n")
    assert read_env_file(env_file) == {"MicrosoftAppPassword": value, "BOTLOOM_PORT": "4000"}
    settings = Settings.from_env({}, env_file=env_file)
    assert settings.app_password == value
    assert settings.port == 4000


def test_a_quoted_value_may_span_lines(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text('BOTLOOM_SYSTEM_PROMPT="Be brief.\nBe kind."\nBOTLOOM_PORT=4000\n')
    settings = Settings.from_env({}, env_file=env_file)
    assert settings.system_prompt == "Be brief.\nBe kind."
    assert settings.port == 4000
