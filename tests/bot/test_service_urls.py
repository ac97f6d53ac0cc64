"""Where the bot may send replies (bot/security/service_urls.py): exact scheme, host and port, a
path prefix only on a "/" boundary, and list settings read without stray spaces."""

from __future__ import annotations

import pytest

from bot.security.service_urls import service_url_allowed
from bot.settings import Settings

ALLOWED = ("https://a.example", "https://b.example:8443/bots")


@pytest.mark.parametrize(
    "url",
    [
        "https://a.example",
        "https://a.example/",
        "https://a.example/v3/conversations",
        "https://A.EXAMPLE:443/x",
        "https://b.example:8443/bots",
        "https://b.example:8443/bots/teams/",
    ],
)
def test_urls_under_an_entry_are_allowed(url: str) -> None:
    assert service_url_allowed(url, ALLOWED)


@pytest.mark.parametrize(
    "url",
    [
        "https://a.example.evil.net/",  # a longer host
        "https://a.example@evil.net/",  # the entry as user info
        "https://a.examplex/",
        "http://a.example/",  # another scheme
        "https://a.example:8443/",  # another port
        "https://b.example:8443/botsx",  # a path prefix not on a / boundary
        "https://b.example:8443/",
        "https://b.example/bots",
        "https://a.example:notaport/",
        "not a url",
    ],
)
def test_urls_that_only_share_a_prefix_are_refused(url: str) -> None:
    assert not service_url_allowed(url, ALLOWED)


def test_list_settings_are_stripped() -> None:
    settings = Settings.from_env(
        {
            "BOTLOOM_ALLOWED_SERVICE_URLS": " https://a.example , https://b.example ,",
            "BOTLOOM_STOP": "User:, Assistant: ",
        },
        env_file=None,
    )
    assert settings.allowed_service_urls == ("https://a.example", "https://b.example")
    assert settings.stop == ("User:", "Assistant:")
    assert service_url_allowed("https://b.example/x", settings.allowed_service_urls)
