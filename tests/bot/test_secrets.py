"""Credentials never in a repr, a log line, /healthz, a trace or a response, in any encoding; and
tracebacks only for a loopback Emulator."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from botbuilder.core import TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ChannelAccount,
    ConversationAccount,
    DeliveryModes,
)

from bot.app import create_app
from bot.redaction import SecretsFilter, describe_error, mask_url, register_settings
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
        # percent-encoded, and raw / and @ inside the password
        ("postgresql://u:p%40ss%2Fw0rd@db/x", "postgresql://u:***@db/x"),
        ("postgresql://u:pa/ss@w0rd@db:5432/x", "postgresql://u:***@db:5432/x"),
        # secret-named query parameters, whatever their spelling
        (
            "https://m.example/v1?access_token=t0k&model=x&api-key=k3y",
            "https://m.example/v1?access_token=***&model=x&api-key=***",
        ),
        (
            "https://blob.example/c/f.txt?sv=2022&sig=s1g%2Bx&se=1",
            "https://blob.example/c/f.txt?sv=2022&sig=***&se=1",
        ),
        ("https://fn.example/api/f?code=c0de", "https://fn.example/api/f?code=***"),
        ("https://s3.example/o?X-Amz-Signature=abc", "https://s3.example/o?X-Amz-Signature=***"),
        ("https://m.example/v1?model=x", "https://m.example/v1?model=x"),
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


def filtered_log(settings: Settings) -> tuple[logging.Logger, logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretsFilter.for_settings(settings))
    log = logging.getLogger("tests.secrets.encodings")
    log.addHandler(handler)
    return log, handler, stream


def test_every_secret_setting_is_masked_in_every_encoding() -> None:
    settings = Settings.from_env(
        {
            "BOTLOOM_KNOWLEDGE_STORE": "postgresql://kb:kn-s3cret@kb.example/kb",
            "BOTLOOM_STORAGE": "postgresql://u:pg%2Fs3cret%40x@db.example/botloom",
            "BOTLOOM_MODEL_URL": "https://models.example/v1?api-key=url-s3cret",
            "MicrosoftAppPassword": "app s3cret/+&",
        },
        env_file=None,
    )
    log, handler, stream = filtered_log(settings)
    try:
        log.warning("knowledge store refused password %s", "kn-s3cret")
        log.warning("cannot connect to %s", settings.storage)  # percent-encoded in the URL
        log.warning("auth failed for password %r", "pg/s3cret@x")  # decoded
        log.warning("GET /v1/models?api-key=url-s3cret failed")  # a URL's query, no scheme
        log.warning("form body client_secret=app+s3cret%2F%2B%26")  # form-encoded
        log.warning('json body {"password": "app s3cret/+&"}')
        log.warning("token in https://elsewhere.example/cb?access_token=unregistered-t0k")
        log.warning("GET /v1/models?model=m&access_token=unregistered-t0k failed")
    finally:
        log.removeHandler(handler)
    written = stream.getvalue()
    assert "s3cret" not in written, written
    assert "unregistered-t0k" not in written, written


async def test_healthz_never_shows_the_model_server_credentials(tmp_path: Path) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=401)

    app = web.Application()
    app.router.add_get("/v1/models", refuse)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = f"http://user:url-s3cret@127.0.0.1:{server.port}/v1?api-key=qry-s3cret"
    settings = Settings(
        storage=f"sqlite:///{tmp_path}/state.db",
        model_url=base,
        model_max_retries=0,
        model_probe_interval_s=0.05,
    )
    client = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await client.start_server()
    try:
        for _ in range(200):
            body = await (await client.get("/healthz")).text()
            if '"reachable": false' in body:
                break
            await asyncio.sleep(0.05)
        assert '"reachable": false' in body, body
        assert "HTTP 401" in body and "127.0.0.1" in body, body
        assert "s3cret" not in body, body
    finally:
        await client.close()
        await server.close()


def test_error_descriptions_name_the_class_and_redact_the_message() -> None:
    register_settings(Settings(app_password="descr-s3cret"))
    error = ValueError("login with descr-s3cret to https://u:p4ss@h.example/?token=t0k")
    assert (
        describe_error(error) == "ValueError: login with *** to https://u:***@h.example/?token=***"
    )
    assert describe_error(TimeoutError()) == "TimeoutError"


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


async def test_an_expect_replies_request_never_gets_a_trace() -> None:
    """Its replies go back in the HTTP response, to whoever sent it: a loopback serviceUrl says
    nothing about who that is."""
    _, context = failing_turn("http://127.0.0.1:51234")
    context.activity.delivery_mode = DeliveryModes.expect_replies
    await on_turn_error(context, RuntimeError("boom"))
    sent = context.buffered_reply_activities  # what the HTTP response carries
    assert [a.type for a in sent] == [ActivityTypes.message]


async def test_the_emulator_trace_is_redacted() -> None:
    register_settings(Settings(app_password="trace-s3cret"))
    adapter, context = failing_turn("http://127.0.0.1:51234")
    await on_turn_error(context, RuntimeError("cannot log in with trace-s3cret"))
    traces = [a for a in adapter.activity_buffer if a.type == ActivityTypes.trace]
    assert traces and "RuntimeError: cannot log in with ***" in traces[0].value
    assert "s3cret" not in traces[0].value


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
