"""Chunks follow sections, stay within the token bound and overlap a little."""

from __future__ import annotations

import itertools

from bot.knowledge.chunking import approx_tokens, chunk_sections
from bot.knowledge.readers import Section


def test_a_short_section_is_one_chunk_that_keeps_heading_and_page() -> None:
    chunks = chunk_sections([Section("Hello there.", "Intro", 3), Section("Next.", "Other", 4)])
    assert [(c.text, c.heading, c.page, c.ordinal) for c in chunks] == [
        ("Hello there.", "Intro", 3, 0),
        ("Next.", "Other", 4, 1),
    ]


def test_long_sections_are_cut_within_the_bound_with_overlap() -> None:
    sentences = [f"Fact {i} is that item {i} weighs {i * 3} grams." for i in range(60)]
    text = " ".join(sentences[:30]) + "\n\n" + " ".join(sentences[30:])
    chunks = chunk_sections([Section(text, "Weights")], max_tokens=50, overlap_tokens=12)
    assert len(chunks) > 5
    assert all(approx_tokens(c.text) <= 50 for c in chunks)
    assert all(c.heading == "Weights" for c in chunks)
    for sentence in sentences:  # every fact is whole in some chunk
        assert any(sentence in c.text for c in chunks), sentence
    for before, after in itertools.pairwise(chunks):
        tail = before.text.split()[-3:]
        assert " ".join(tail) in after.text, "each chunk starts with the end of the one before"


def test_a_chunk_never_crosses_sections() -> None:
    chunks = chunk_sections(
        [Section("word " * 30, "A"), Section("other " * 30, "B")], max_tokens=100
    )
    assert [c.heading for c in chunks] == ["A", "B"]


def test_a_giant_sentence_is_cut_at_words() -> None:
    chunks = chunk_sections([Section("x" + " y" * 1000, "")], max_tokens=64, overlap_tokens=8)
    assert all(approx_tokens(c.text) <= 64 for c in chunks)
    assert sum(c.text.count("y") for c in chunks) >= 1000
