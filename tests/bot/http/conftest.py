"""The fake key server and the bot behind it (tests/bot/http/test_auth.py), for every test here."""

from tests.bot.http.test_auth import key, key_server, secured_bot  # noqa: F401
