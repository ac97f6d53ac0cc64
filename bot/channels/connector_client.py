"""Sending replies to the channel's connector: pooled async HTTP, retried on 429 and 5xx.

Only messages (a stream's final message included) get the full retry. A typing indicator is
best-effort: one try with a short timeout. A stream update gets one try with a short deadline too;
the stream itself backs off (bot/channels/streaming_reply.py), since Teams answers 429 to more than
about one update a second.

botbuilder 4.17.1 sends each activity with `requests` on the event loop's default thread pool
(a handful of threads on a small machine), and urllib3's own retries stall a turn for seconds
when a connector is down. botloom posts with one shared aiohttp session instead.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity, ActivityTypes, ResourceResponse
from botframework.connector import Channels
from botframework.connector.auth import AuthenticationConstants

from bot.channels.streaming import is_stream_activity
from bot.security.local_secret import LocalSecret
from models.backoff import backoff_s, retry_after_s

logger = logging.getLogger(__name__)


class ConnectorError(Exception):
    """The connector refused an activity (after retries, for transient errors). The message
    carries the connector's error code and message (Teams tells its 403s apart by them);
    `retry_after_s` is the connector's Retry-After, where it sent one."""

    def __init__(
        self, status: int | None, message: str, *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # tries per message, the first included
    base_delay_s: float = 0.5  # doubled after each failure, with jitter
    max_delay_s: float = 8.0  # also caps a connector's Retry-After
    timeout_s: float = 15.0  # per try
    typing_timeout_s: float = 3.0  # a typing indicator: one try, best-effort
    update_timeout_s: float = 5.0  # a stream update: one try; the stream backs off itself


def tries_of(activity: Activity, policy: RetryPolicy) -> tuple[int, float]:
    """How many tries an activity gets, and the timeout of each."""
    if activity.type == ActivityTypes.typing:
        if is_stream_activity(activity):
            return 1, policy.update_timeout_s
        return 1, policy.typing_timeout_s
    return policy.attempts, policy.timeout_s


class RetryingCloudAdapter(CloudAdapter):
    """A CloudAdapter whose sends go through one pooled aiohttp session and survive throttling
    and transient connector errors. Activities are sent one at a time, so a retry never repeats
    one that was delivered. Call `close()` at shutdown."""

    def __init__(
        self,
        *args: object,
        retry: RetryPolicy = RetryPolicy(),
        local_secret: LocalSecret | None = None,
        trace_configs: list[aiohttp.TraceConfig] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.retry = retry
        self._trace_configs = trace_configs  # spans and metrics per request (bot/observability)
        self._local_secret = local_secret  # sent to the local Direct Line only
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send_activities(
        self, context: TurnContext, activities: list[Activity]
    ) -> list[ResourceResponse]:
        responses = []
        for activity in activities:
            activity.id = None
            if activity.type == "delay":
                await asyncio.sleep((activity.value or 1000) / 1000)
                responses.append(ResourceResponse(id=""))
            elif activity.type == ActivityTypes.invoke_response:
                context.turn_state[self._INVOKE_RESPONSE_KEY] = activity
                responses.append(ResourceResponse(id=""))
            elif activity.type == ActivityTypes.trace:
                responses.append(await self._post_trace(context, activity))
            else:
                responses.append(await self._post(context, activity))
        return responses

    async def _post_trace(self, context: TurnContext, activity: Activity) -> ResourceResponse:
        """Traces are debugging aid for the Emulator (dropped elsewhere): sent once, and a failure
        to deliver one does not fail the turn."""
        if activity.channel_id != Channels.emulator:
            return ResourceResponse(id="")
        try:
            return await self._post(context, activity, attempts=1)
        except ConnectorError as error:
            logger.info("trace not delivered: %s", error)
            return ResourceResponse(id="")

    async def _post(
        self, context: TurnContext, activity: Activity, *, attempts: int | None = None
    ) -> ResourceResponse:
        client = context.turn_state.get(self.BOT_CONNECTOR_CLIENT_KEY)
        if client is None:
            raise ConnectorError(None, "no connector client for this turn")
        url = activity_url(client.config.base_url, activity)
        headers = await _auth_headers(client.config.credentials)
        if self._local_secret is not None:
            headers.update(self._local_secret.headers_for(client.config.base_url))
        body = activity.serialize()
        if self._session is None:
            self._session = aiohttp.ClientSession(trace_configs=self._trace_configs)
        policy = self.retry
        tries, timeout_s = tries_of(activity, policy)
        attempts = attempts or tries
        for attempt in range(1, attempts + 1):
            status, retry_after, detail = None, None, "no answer"
            try:
                async with self._session.post(
                    url,
                    json=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout_s),
                    trace_request_ctx={"attempt": attempt},
                ) as response:
                    if response.status < 300:
                        data = (
                            await response.json(content_type=None)
                            if response.content_length != 0
                            else None
                        )
                        return ResourceResponse(
                            id=(data or {}).get("id", "") if isinstance(data, dict) else ""
                        )
                    status, retry_after = response.status, response.headers.get("Retry-After")
                    detail = await _error_detail(response)
            except (aiohttp.ClientError, TimeoutError) as error:
                logger.info("connector unreachable: %s", type(error).__name__)
            transient = status is None or status == 429 or status >= 500
            if not transient or attempt == attempts:
                kind = getattr(activity.type, "value", activity.type)
                raise ConnectorError(
                    status,
                    f"connector answered {status} to {kind}: {detail}",
                    retry_after_s=retry_after_s(retry_after),
                )
            delay = _delay(attempt, retry_after, policy)
            logger.info(
                "connector send failed, retrying in %.1f s conversation=%s status=%s",
                delay,
                activity.conversation.id if activity.conversation else None,
                status,
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")


def activity_url(service_url: str, activity: Activity) -> str:
    base = service_url.rstrip("/")
    conversation = quote(activity.conversation.id, safe="")
    url = f"{base}/v3/conversations/{conversation}/activities"
    return f"{url}/{quote(activity.reply_to_id, safe='')}" if activity.reply_to_id else url


async def _auth_headers(credentials: object) -> dict[str, str]:
    """Bearer token when the bot has an app id (msal caches it; fetched off the event loop)."""
    app_id = getattr(credentials, "microsoft_app_id", None)
    if not app_id or app_id == AuthenticationConstants.ANONYMOUS_SKILL_APP_ID:
        return {}
    token = await asyncio.to_thread(credentials.get_access_token)  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {token}"}


async def _error_detail(response: aiohttp.ClientResponse) -> str:
    """The connector's error code and message (`{"error": {"code", "message"}}`), shortened."""
    try:
        data = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return ""
    return f"{error.get('code', '')}: {error.get('message', '')}"[:300]


def _delay(attempt: int, retry_after: str | None, policy: RetryPolicy) -> float:
    seconds = retry_after_s(retry_after)
    if seconds is not None:
        return min(seconds, policy.max_delay_s)
    return backoff_s(attempt, policy.base_delay_s, policy.max_delay_s)
