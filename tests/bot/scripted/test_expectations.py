"""Matching a bot line against a reply: exact text, /regex/, wildcard, attachments."""

from __future__ import annotations

import re

import pytest
from botbuilder.schema import Attachment, HeroCard

from bot.scripted.expectations import AttachmentExpectation, TextExpectation


@pytest.mark.parametrize(
    ("written", "actual", "matches"),
    [
        ("fake: hello", "fake: hello", True),
        ("fake: hello", "  fake: hello\r\n", True),  # outer whitespace, line endings
        ("fake: hello", "fake: hello!", False),
        ("Two\nlines", "Two\r\nlines", True),
        ("/^fake: .+$/", "fake: anything", True),
        ("/Paris/", "The capital is Paris.", True),  # re.search: anywhere
        ("/^Paris$/", "The capital is Paris.", False),
        ("/(?i)PARIS/", "paris", True),
        ("fake: *", "fake: anything at all", True),
        ("fake: *", "real: anything", False),
        ("*Paris*", "Line one\nParis\nline three", True),  # * spans lines
        ("a*c", "abc", True),
        ("a.c", "abc", False),  # only * is special in a wildcard
        ("price: 5\\* *", "price: 5* today", True),
        ("price: 5\\* *", "price: 55 today", False),
        ("5\\* stars", "5* stars", True),  # an escaped * alone is exact text
        ("* bullet", "* bullet", True),  # text with a * still matches itself
    ],
)
def test_text_forms(written: str, actual: str, matches: bool) -> None:
    assert TextExpectation.parse(written).matches(actual) is matches


def test_kinds_and_descriptions() -> None:
    assert TextExpectation.parse("hi").kind == "exact"
    assert TextExpectation.parse("/h+/").describe() == "/h+/  (regex)"
    assert TextExpectation.parse("h*").describe() == "h*  (wildcard)"


def test_an_invalid_regex_is_reported() -> None:
    with pytest.raises(re.error):
        TextExpectation.parse("/(/")


def test_transcript_text_is_taken_literally() -> None:
    expectation = TextExpectation.exact("/not a regex/ *")
    assert expectation.matches("/not a regex/ *")
    assert not expectation.matches("/not a regex/ and more")


def test_diff_of_exact_text_shows_the_changed_line() -> None:
    diff = TextExpectation.parse("one\ntwo\nthree").diff("one\n2\nthree")
    assert "- two" in diff and "+ 2" in diff and "  one" in diff
    assert TextExpectation.parse("/x/").diff("y") == []


def test_attachments_match_on_the_fields_given() -> None:
    card = Attachment(
        content_type="application/vnd.microsoft.card.hero", content=HeroCard(title="Hi")
    )
    assert AttachmentExpectation("application/vnd.microsoft.card.hero").matches(card)
    assert AttachmentExpectation(content={"title": "Hi"}).matches(card)
    assert not AttachmentExpectation(content={"title": "Bye"}).matches(card)
    image = Attachment(content_type="image/png", content_url="https://x.test/a.png", name="a.png")
    assert AttachmentExpectation("image/png", content_url="https://x.test/a.png").matches(image)
    assert AttachmentExpectation(name="a.png").matches(image)
    assert not AttachmentExpectation("image/jpeg").matches(image)
