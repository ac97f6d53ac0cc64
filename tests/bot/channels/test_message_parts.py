"""Splitting a reply that is too long for one message."""

from __future__ import annotations

from bot.channels.message_parts import split_message


def test_short_text_and_no_limit_stay_whole() -> None:
    assert split_message("", 10) == [""]
    assert split_message("short", 10) == ["short"]
    assert split_message("x" * 50, None) == ["x" * 50]


def test_splits_at_paragraphs_then_lines_then_words() -> None:
    assert split_message("aaaa\n\nbbbb\n\ncccc", 11) == ["aaaa\n\nbbbb", "cccc"]
    assert split_message("aaaa\nbbbb\ncccc", 9) == ["aaaa\nbbbb", "cccc"]
    assert split_message("aaaa bbbb cccc", 9) == ["aaaa bbbb", "cccc"]


def test_a_word_longer_than_the_limit_is_cut_and_nothing_is_lost() -> None:
    assert split_message("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_the_limit_is_in_utf8_bytes_and_characters_are_never_cut() -> None:
    text = "é" * 12  # 24 bytes
    parts = split_message(text, 10)
    assert all(len(p.encode()) <= 10 for p in parts) and "".join(parts) == text
