"""The real Web Chat UI in headless chromium: on botloom's /chat page over botloom's own Direct
Line, and through a third-party Direct Line server (offline-directline). Screenshots go to
$BOTLOOM_SCREENSHOT_DIR (else a temporary folder); run with -s to see the figures."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bot.app import RUNTIME
from bot.settings import Settings
from bot.turns.activity_handler import WELCOME_TEXT
from models import ChatModel
from models.fake import FakeChatModel
from tests.browser.conftest import Browser

pytestmark = pytest.mark.browser

MESSAGE = "please tell me a short story about a curious cat who finds a lost key"


def reply_texts(result: dict[str, Any]) -> list[tuple[float, str]]:
    """(time, text) of the reply bubble each time it changed, in order."""
    baseline = result["baseline"]
    seen: list[tuple[float, str]] = []
    for sample in result["samples"]:
        texts = sample["texts"]
        if (
            len(texts) > baseline
            and texts[baseline]
            and (not seen or seen[-1][1] != texts[baseline])
        ):
            seen.append((sample["t"], texts[baseline]))
    return seen


async def test_chat_page_shows_the_reply_growing_then_final(
    browser: Browser, bot_server: TestServer
) -> None:
    expected = f"fake: {MESSAGE}"  # 15 pieces, 0.12 s apart
    result = await browser.drive(
        {
            "url": str(bot_server.make_url("/chat")),
            "message": MESSAGE,
            "welcomeBubbles": 1,
            "expectText": expected,
            "screenshots": {"dir": str(browser.screenshots), "prefix": "local-chat"},
        }
    )
    assert "error" not in result, result.get("error")
    # the probe records every change, the empty page too when Web Chat renders after it starts
    shown = next(sample["texts"] for sample in result["samples"] if sample["texts"])
    assert shown[0] == WELCOME_TEXT.replace("'", "’")
    assert result["userTexts"] == [MESSAGE]
    grown = reply_texts(result)
    texts = [text for _, text in grown]
    assert texts[-1] == expected
    partials = texts[:-1]
    assert len(partials) >= 3, f"the reply did not grow: {texts}"
    assert all(expected.startswith(p) and len(p) < len(expected) for p in partials)
    assert [len(t) for t in texts] == sorted(len(t) for t in texts), "it only grows"
    first_at, final_at = grown[0][0], grown[-1][0]
    assert final_at - first_at > 0.5, "partial text was on screen well before the reply completed"
    assert result["midShot"] and not isinstance(result["midShot"], dict), result["midShot"]
    sent = result["sentAt"]
    print(
        f"\n[figure] local chat page: {len(partials)} partial renders before the final; "
        f"first text {first_at - sent:.0f} ms after Enter, final {final_at - sent:.0f} ms; "
        f"screenshots {[*result['screenshots'], result['midShot']]}"
    )


class TestPromptStarters:
    """BOTLOOM_PROMPT_STARTERS: the welcome's suggested actions; a click asks the model."""

    @pytest.fixture
    def bot_settings(self, tmp_path: Path) -> Settings:
        return Settings(
            storage=f"sqlite:///{tmp_path}/state.db",
            prompt_starters="Explain|Explain how a transformer works;Haiku|Write a haiku",
        )

    async def test_clicking_a_prompt_starter_gets_an_answer(
        self, browser: Browser, bot_server: TestServer
    ) -> None:
        result = await browser.drive(
            {
                "url": str(bot_server.make_url("/chat")),
                "clickSuggestion": "Explain",
                "welcomeBubbles": 1,
                "expectText": "fake: Explain how a transformer works",
                "screenshots": {"dir": str(browser.screenshots), "prefix": "prompt-starter"},
            }
        )
        assert "error" not in result, result.get("error")
        assert result["userTexts"] == ["Explain how a transformer works"]
        assert reply_texts(result)[-1][1] == "fake: Explain how a transformer works"
        print(f"\n[figure] prompt starter clicked; screenshots {result['screenshots']}")


class TestStop:
    """Typing "stop" while a reply streams stops it, as Teams' Stop button does."""

    @pytest.fixture
    def bot_model(self) -> ChatModel | None:
        return FakeChatModel(reply=lambda _: " ".join(f"word{i}" for i in range(300)), delay=0.05)

    @pytest.fixture
    def bot_settings(self, tmp_path: Path) -> Settings:
        return Settings(storage=f"sqlite:///{tmp_path}/state.db", max_new_tokens=400)

    async def test_saying_stop_stops_the_reply_and_the_model(
        self, browser: Browser, bot_server: TestServer, bot_model: FakeChatModel
    ) -> None:
        result = await browser.drive(
            {
                "url": str(bot_server.make_url("/chat")),
                "message": "write me a very long story",
                "welcomeBubbles": 1,
                "stopText": "stop",
                "screenshots": {"dir": str(browser.screenshots), "prefix": "stop"},
            }
        )
        assert "error" not in result, result.get("error")
        produced = bot_model.pieces_produced
        await asyncio.sleep(0.5)
        assert bot_model.pieces_produced == produced < 100, "generation stopped"
        words = result["finalText"].split()
        assert words == [f"word{i}" for i in range(len(words))] and len(words) < 100
        assert result["userTexts"] == ["write me a very long story", "stop"]
        assert reply_texts(result)[-1][1] == result["finalText"]
        stop_to_final = result["finalAt"] - result["stopAt"]
        assert stop_to_final < 2000
        print(
            f"\n[figure] stop in Web Chat: final reply {stop_to_final:.0f} ms after 'stop' was "
            f"sent, {produced} of 300 pieces produced; screenshots "
            f"{[*result['screenshots'], result['midShot']]}"
        )


OFFLINE_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<title>Web Chat via offline-directline</title>
<style>html,body{{height:100%;margin:0}}#webchat{{height:100%}}</style></head>
<body><div id="webchat"></div><script src="{bot}/chat/webchat.js"></script><script>
const directLine = window.WebChat.createDirectLine({{
  domain: '{directline}/directline', token: 'offline', webSocket: false, pollingInterval: 200 }});
window.WebChat.renderWebChat({{ directLine, userID: 'offline-user', username: 'You',
  styleOptions: {{ botAvatarInitials: 'BL', userAvatarInitials: 'You' }} }},
  document.getElementById('webchat'));
</script></body></html>"""


async def test_web_chat_through_offline_directline_reaches_the_bot(
    browser: Browser, bot_server: TestServer, offline_directline: str
) -> None:
    """Protocol compatibility: a third-party Direct Line server in front of botloom (it calls
    the channel "emulator", so the reply comes as one message)."""
    bot = str(bot_server.make_url("")).rstrip("/")
    message = "hello through a third-party Direct Line"
    result = await browser.drive(
        {
            "html": OFFLINE_PAGE.format(bot=bot, directline=offline_directline),
            "origin": bot,
            "message": message,
            "expectText": f"fake: {message}",
            "screenshots": {"dir": str(browser.screenshots), "prefix": "offline-directline"},
        }
    )
    assert "error" not in result, result.get("error")
    assert result["userTexts"] == [message]
    assert reply_texts(result)[-1][1] == f"fake: {message}"
    print(f"\n[figure] offline-directline round trip; screenshots {result['screenshots']}")


QUESTIONS = (
    "Hi! What is a good name for a black cat?",
    "What is the capital of France?",
    "Can you suggest a quick breakfast?",
)


@pytest.mark.slow
class TestEmbeddedModel:
    """The real embedded default (SmolLM2-135M-Instruct) on this machine's CPU."""

    @pytest.fixture
    def bot_model(self) -> ChatModel | None:
        return None  # the configured default: BOTLOOM_MODEL=embedded

    @pytest.fixture
    def bot_settings(self, tmp_path: Path) -> Settings:
        # Time to the first text does not depend on the reply's length; shorter replies keep the
        # three runs quick.
        return Settings(storage=f"sqlite:///{tmp_path}/state.db", max_new_tokens=48)

    async def test_real_model_reply_streams_into_web_chat(
        self, browser: Browser, bot_server: TestServer
    ) -> None:
        """Three fresh browser sessions, one question each: the real model's reply appears in
        pieces before it is final. Time to first text is printed as a figure, not asserted (a
        timed assertion on a shared 2-core machine is a flaky test; issue 4's target is < 2 s)."""
        started = time.monotonic()
        async with asyncio.timeout(600):  # the first use converts the model (about 30 s)
            await bot_server.app[RUNTIME].model.inner.wait_ready()
        loaded_s = time.monotonic() - started
        firsts, streamed = [], 0
        for run, question in enumerate(QUESTIONS, start=1):
            result = await browser.drive(
                {
                    "url": str(bot_server.make_url("/chat")),
                    "message": question,
                    "welcomeBubbles": 1,
                    "screenshots": (
                        {"dir": str(browser.screenshots), "prefix": "embedded-model"}
                        if run == 1
                        else None
                    ),
                },
                timeout_s=180,
            )
            assert "error" not in result, result.get("error")
            grown = reply_texts(result)
            sent = result["sentAt"]
            first_s, final_s = (grown[0][0] - sent) / 1000, (result["finalAt"] - sent) / 1000
            firsts.append(first_s)
            # A short reply can be generated whole within one streaming interval (0.5 s) and
            # arrive as the final message alone; the fake model's test above checks growth
            # deterministically. Here: the real model's replies stream, most of them.
            streamed += len(grown) >= 2
            arrivals = [
                (round(a["t"] - sent), a["streamType"] or a["type"]) for a in result["arrivals"]
            ]
            print(
                f"\n[figure] embedded model run {run} (load {os.getloadavg()[0]:.1f}): first "
                f"streamed text in Web Chat {first_s:.2f} s after Enter, final {final_s:.2f} s, "
                f"{len(grown)} renders; Direct Line arrivals (ms, kind) {arrivals[:4]}; "
                f"screenshots {[*result['screenshots'], result['midShot']]}"
            )
        assert streamed >= 2, f"only {streamed} of 3 replies grew in Web Chat before the final"
        median = statistics.median(firsts)
        print(
            f"[figure] model ready after {loaded_s:.1f} s; "
            f"median first streamed text {median:.2f} s"
        )
        assert all(first > 0 for first in firsts), firsts
