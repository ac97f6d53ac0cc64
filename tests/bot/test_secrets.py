"""Credentials never in a repr or a log line, and tracebacks only for a loopback Emulator
(issue 12, item 7)."""

from __future__ import annotations

import io
import logging

import pytest
from botbuilder.core import TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, ConversationAccount

from bot.redaction import SecretsFilter, mask_url
from bot.settings import Settings
from bot.turns.error_handler import on_turn_error

SECRET_SETTINGS = {
    "MicrosoftAppPassword": "app-s3cret",
    "BOTLOOM_MODEL_API_KEY": "key-s3cret",
    "BOTLOOM_STORAGE": "postgresql://botloom:pg-s3cret@db.example:5432/botloom",
    "BOTLOOM_MODEL_URL": "https://user:url-s3cret@models.example/v1",
}


def test_settings_repr_masks_every_credential() -> None:
    settings = Settings.from_env(SECRET_SETTINGS, env_file=None)
    shown = repr(settings)
    assert "s3cret" not in shown
    assert "postgresql://botloom:***@db.example:5432/botloom" in shown
    assert "https://user:***@models.example/v1" in shown


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:r3dis@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://botloom@db/botloom", "postgresql://botloom@db/botloom"),
        (
            "postgresql://db/botloom?user=botloom&password=q3ery",
            "postgresql://db/botloom?user=botloom&password=***",
        ),
        ("sqlite:///data/botloom.db", "sqlite:///data/botloom.db"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_log_lines_never_carry_a_credential() -> None:
    settings = Settings.from_env(SECRET_SETTINGS, env_file=None)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretsFilter.for_settings(settings))
    log = logging.getLogger("tests.secrets")
    log.addHandler(handler)
    try:
        log.warning("cannot connect to %s", settings.storage)
        log.warning("token %s rejected by %s", settings.model_api_key, settings.model_url)
        try:
            raise ValueError(f"bad password {settings.app_password}")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    written = stream.getvalue()
    assert "s3cret" not in written
    assert written.count("***") >= 4


def failing_turn(service_url: str) -> tuple[TestAdapter, TurnContext]:
    adapter = TestAdapter(send_trace_activities=True)
    activity = Activity(
        type=ActivityTypes.message,
        text="hi",
        channel_id="emulator",
        service_url=service_url,
        conversation=ConversationAccount(id="c1"),
        from_property=ChannelAccount(id="u1"),
        recipient=ChannelAccount(id="bot"),
    )
    return adapter, TurnContext(adapter, activity)


@pytest.mark.parametrize(
    ("service_url", "traced"),
    [
        ("http://127.0.0.1:51234", True),
        ("http://localhost:51234", True),
        ("https://emulator-tunnel.example.net", False),  # an allowlisted non-loopback URL
        ("http://192.0.2.10:51234", False),
    ],
)
async def test_traceback_only_for_a_loopback_emulator(service_url: str, traced: bool) -> None:
    adapter, context = failing_turn(service_url)
    await on_turn_error(context, RuntimeError("boom"))
    sent = list(adapter.activity_buffer)
    assert sent[0].text == "Sorry, something went wrong on my side. Please try again."
    traces = [a for a in sent if a.type == ActivityTypes.trace]
    assert bool(traces) is traced
    assert all("RuntimeError: boom" in a.value for a in traces)


def test_remote_model_options_repr_masks_the_url_password_and_the_key() -> None:
    from models.serving.remote import RemoteOptions

    shown = repr(RemoteOptions(url="https://u:url-s3cret@models.example/v1", api_key="k3y-s3cret"))
    assert "s3cret" not in shown and "https://u:***@models.example/v1" in shown
