"""What the bot does not read, said politely and at once: images, archives, corrupt files, files
over the limit, and files on an origin it may not download from (never requested)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from bot.files.fetch import FetchLimits, FetchRefused, fetch, may_fetch
from dialogs.files import Refusal
from tests.bot.files.conftest import send
from tests.connector import FakeConnector

KINDS = "I can read PDF, Word (.docx), Markdown, HTML and text files up to 25 MB."
MB = 1024 * 1024


async def test_an_image_and_a_zip_are_refused_without_a_download(
    client: TestClient, connector: FakeConnector
) -> None:
    attachments = [
        {"contentType": "image/png", "contentUrl": connector.serve_file("a.png"), "name": "a.png"},
        {"contentType": "", "contentUrl": connector.serve_file("b.zip"), "name": "b.zip"},
    ]
    [reply] = await send(client, connector, None, attachments=attachments)
    image, archive = reply["text"].split("\n\n")
    assert image == f"Sorry, I can't read images such as a.png: I only read text. {KINDS}"
    assert archive.startswith("Sorry, I can't open archives such as b.zip.")
    assert archive.endswith(KINDS)
    assert connector.file_requests == []


async def test_a_corrupt_pdf_is_refused_with_the_reason(
    client: TestClient, connector: FakeConnector
) -> None:
    url = connector.serve_file("broken.pdf", b"%PDF-1.4 this is not a PDF", "application/pdf")
    attachment = {"contentType": "application/pdf", "contentUrl": url, "name": "broken.pdf"}
    [reply] = await send(client, connector, None, attachments=[attachment])
    assert reply["text"].startswith("Sorry, I couldn't read broken.pdf (")
    assert reply["text"].endswith(KINDS)


async def test_a_foreign_origin_is_never_requested(
    client: TestClient, connector: FakeConnector
) -> None:
    elsewhere = FakeConnector()
    await elsewhere.start()
    try:
        url = elsewhere.serve_file("fare.pdf", b"%PDF", "application/pdf")
        attachment = {"contentType": "application/pdf", "contentUrl": url, "name": "fare.pdf"}
        [reply] = await send(
            client, connector, "what is the fare?", replies=1, attachments=[attachment]
        )
        assert reply["text"] == "Sorry, I may not download fare.pdf from where it is stored."
        assert elsewhere.file_requests == []
    finally:
        await elsewhere.close()


async def test_a_40_mb_file_is_refused_over_the_wire(
    client: TestClient, connector: FakeConnector
) -> None:
    url = connector.serve_file("big.pdf", size=40 * MB, length_header=False)
    attachment = {"contentType": "application/pdf", "contentUrl": url, "name": "big.pdf"}
    [reply] = await send(client, connector, None, attachments=[attachment])
    assert reply["text"] == f"Sorry, big.pdf is larger than I can read. {KINDS}"
    assert connector.file_bytes_sent["big.pdf"] < 40 * MB


@pytest.mark.parametrize("length_header", [True, False])
async def test_the_download_stops_at_the_limit_whatever_content_length_says(
    connector: FakeConnector, length_header: bool
) -> None:
    url = connector.serve_file("big.pdf", size=40 * MB, length_header=length_header)
    limits = FetchLimits(max_bytes=25 * MB)
    with pytest.raises(FetchRefused) as refused:
        await fetch(url, limits)
    assert refused.value.refusal is Refusal.TOO_LARGE
    assert refused.value.bytes_read <= limits.max_bytes + 64 * 1024
    if length_header:  # refused on the header, before reading the body
        assert refused.value.bytes_read == 0


async def test_a_redirect_to_another_origin_is_not_followed(connector: FakeConnector) -> None:
    elsewhere = FakeConnector()
    await elsewhere.start()
    try:
        target = elsewhere.serve_file("x.pdf", b"%PDF", "application/pdf")
        url = connector.serve_file("x.pdf", redirect=target)
        with pytest.raises(FetchRefused) as refused:
            await fetch(url, FetchLimits())
        assert refused.value.refusal is Refusal.NOT_ALLOWED
        assert elsewhere.file_requests == []
    finally:
        await elsewhere.close()


def test_the_allowed_origins() -> None:
    service = "https://smba.trafficmanager.net/teams/"
    assert may_fetch("https://contoso.sharepoint.com/a/b.pdf", service, "msteams", ())
    assert not may_fetch("https://contoso.sharepoint.com/a/b.pdf", service, "emulator", ())
    assert not may_fetch("https://evil.com/sharepoint.com/b.pdf", service, "msteams", ())
    assert not may_fetch("http://contoso.sharepoint.com/b.pdf", service, "msteams", ())
    assert may_fetch("https://smba.trafficmanager.net/x/y", service, "msteams", ())
    assert not may_fetch("https://files.example/a.pdf", service, "msteams", ())
    allowed = ("https://files.example/shared",)
    assert may_fetch("https://files.example/shared/a.pdf", service, "emulator", allowed)
    assert not may_fetch("https://files.example/other/a.pdf", service, "emulator", allowed)
    assert not may_fetch("file:///etc/passwd", "file:///", "emulator", ())
    # A local file only in `botloom chat` (whose serviceUrl no HTTP activity can have).
    assert may_fetch("file:///tmp/a.pdf", "console://", "console", ())
    assert not may_fetch("file:///etc/passwd", "http://127.0.0.1:1/", "console", ())


async def test_an_http_activity_cannot_have_a_local_file_read(
    client: TestClient, connector: FakeConnector, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("The vault code is 7741.")
    attachment = {"contentType": "", "contentUrl": secret.as_uri(), "name": "secret.md"}
    [reply] = await send(client, connector, None, attachments=[attachment], channel="console")
    assert reply["text"] == "Sorry, I may not download secret.md from where it is stored."
