"""A fake Bot Connector on loopback: records the activities a bot sends to its serviceUrl."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

Activity = dict[str, Any]


@dataclass
class _Refusal:
    predicate: Callable[[Activity], bool]
    status: int
    error: dict[str, Any]
    headers: dict[str, str]
    times: int | None  # None: every match


class FakeConnector:
    """Serves POST /v3/conversations/{conversation}/activities[/{reply_to}] and records each body.

    `fail_next(status, times)` makes the next sends fail, to exercise retries; `refuse_when`
    refuses the sends that match a predicate with a Bot Connector error body (Teams' Stop button).
    `times` holds the arrival time (time.monotonic) of each recorded activity.
    """

    def __init__(self) -> None:
        self.activities: list[Activity] = []
        self.paths: list[str] = []
        self.authorizations: list[str | None] = []
        self._arrived = asyncio.Condition()
        self._ids = itertools.count(1)
        self._failures: list[int] = []
        self.times: list[float] = []
        self.refused: list[tuple[float, Activity]] = []
        self._refusals: list[_Refusal] = []
        self._blackholes: list[Callable[[Activity], bool]] = []
        self.blackholed: list[Activity] = []
        self._never = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v3/conversations/{conversation}/activities", self._receive)
        app.router.add_post("/v3/conversations/{conversation}/activities/{reply_to}", self._receive)
        app.router.add_put("/v3/conversations/{conversation}/activities/{activity}", self._receive)
        self._server = TestServer(app, host="127.0.0.1")

    async def start(self) -> None:
        await self._server.start_server()

    async def close(self) -> None:
        self._never.set()
        await self._server.close()

    @property
    def url(self) -> str:
        return str(self._server.make_url("")).rstrip("/")

    def fail_next(self, status: int, times: int = 1) -> None:
        self._failures.extend([status] * times)

    def refuse_when(
        self,
        predicate: Callable[[Activity], bool],
        status: int = 403,
        code: str = "ContentStreamNotAllowed",
        message: str = "Content stream is not allowed",
        *,
        headers: dict[str, str] | None = None,
        times: int | None = None,
    ) -> None:
        """Answer the later activities that match `predicate` (all, or the first `times`) with
        `status`, an error body and `headers` (e.g. Retry-After)."""
        error = {"error": {"code": code, "message": message}}
        self._refusals.append(_Refusal(predicate, status, error, headers or {}, times))

    def blackhole_when(self, predicate: Callable[[Activity], bool]) -> None:
        """Never answer the activities that match `predicate` (the connection stays open)."""
        self._blackholes.append(predicate)

    async def _receive(self, request: web.Request) -> web.Response:
        if self._failures:
            return web.json_response({"error": {"code": "fake"}}, status=self._failures.pop(0))
        body = await request.json()
        if any(predicate(body) for predicate in self._blackholes):
            self.blackholed.append(body)
            await self._never.wait()  # until close(): the caller has given up long before
            return web.json_response({"error": {"code": "late"}}, status=504)
        for refusal in self._refusals:
            if refusal.predicate(body) and refusal.times != 0:
                if refusal.times is not None:
                    refusal.times -= 1
                async with self._arrived:
                    self.refused.append((time.monotonic(), body))
                    self._arrived.notify_all()
                return web.json_response(
                    refusal.error, status=refusal.status, headers=refusal.headers
                )
        async with self._arrived:
            self.times.append(time.monotonic())
            self.activities.append(body)
            self.paths.append(request.path)
            self.authorizations.append(request.headers.get("Authorization"))
            self._arrived.notify_all()
        return web.json_response({"id": f"reply-{next(self._ids)}"})

    def messages(self, conversation: str | None = None) -> list[Activity]:
        return [
            a
            for a in self.activities
            if a.get("type") == "message"
            and (conversation is None or a.get("conversation", {}).get("id") == conversation)
        ]

    async def wait_for(
        self, predicate: Callable[[list[Activity]], bool], timeout: float = 10.0
    ) -> None:
        """Wait until `predicate(self.activities)` holds."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: predicate(self.activities)), timeout
            )

    async def wait_for_messages(
        self, count: int, conversation: str | None = None, timeout: float = 10.0
    ) -> list[Activity]:
        await self.wait_for(lambda _: len(self.messages(conversation)) >= count, timeout)
        return self.messages(conversation)
