"""Replies that end on a sentence: the cap, the grace, the mark, and what may stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

from dialogs.answer.reply_ending import (
    ELLIPSIS,
    end_on_sentence,
    ends_mid_sentence,
    is_empty_reply,
    sentence_ends,
)


class Pieces:
    """A model's stream: one word per piece ("token"), at most `limit` of them; records closing."""

    def __init__(self, text: str, limit: int) -> None:
        self.words = text.split(" ")[:limit]
        self.produced = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            for index, word in enumerate(self.words):
                self.produced += 1
                yield word if index == 0 else " " + word
        finally:
            self.closed = True


def words(text: str) -> int:
    return len(text.split())


async def collect(
    text: str, cap: int, grace: int, hold: int | None = None
) -> tuple[list[str], Pieces]:
    source = Pieces(text, cap + grace)
    stream = end_on_sentence(source.__aiter__(), words, cap=cap, grace=grace, hold=hold)
    return [piece async for piece in stream], source


async def test_a_reply_past_the_cap_ends_at_the_first_sentence_end_in_the_grace() -> None:
    text = " ".join(["word"] * 9) + " end. " + " ".join(["more"] * 30) + "."
    pieces, source = await collect(text, cap=8, grace=6, hold=2)
    assert "".join(pieces) == " ".join(["word"] * 9) + " end."
    # one piece more shows the sentence really ended ("end." then " more"), then it stops
    assert source.closed and source.produced == 11


async def test_without_a_sentence_end_in_the_grace_it_ends_at_the_last_one_and_is_marked() -> None:
    text = "One two three. Four five six seven eight nine ten eleven twelve thirteen fourteen"
    pieces, _ = await collect(text, cap=8, grace=3, hold=6)
    assert "".join(pieces) == "One two three. " + ELLIPSIS


async def test_at_worst_it_ends_on_a_whole_word_never_mid_word() -> None:
    text = " ".join(f"w{i}" for i in range(40))
    pieces, _ = await collect(text, cap=10, grace=4, hold=2)
    reply = "".join(pieces)
    assert reply.endswith(" " + ELLIPSIS)
    kept = reply.removesuffix(" " + ELLIPSIS).split()
    assert kept == [f"w{i}" for i in range(len(kept))], "whole words only"
    assert len(kept) >= 10 - 2 - 2, "the words before the hold zone all passed"


async def test_streamed_text_is_always_a_prefix_of_the_final_reply() -> None:
    text = "A b c d e f g. H i j k l m n o p q r s t u v w x y z aa bb cc dd ee ff gg."
    for cap in range(3, 30):
        pieces, _ = await collect(text, cap=cap, grace=3)
        reply, seen = "".join(pieces), ""
        for piece in pieces:
            seen += piece
            assert reply.startswith(seen)
        assert not ends_mid_sentence(reply), (cap, reply)


async def test_a_reply_the_model_ends_itself_passes_whole() -> None:
    pieces, _ = await collect("Here is a list\n- one\n- two", cap=50, grace=10)
    assert "".join(pieces) == "Here is a list\n- one\n- two"


async def test_punctuation_only_is_held_back() -> None:
    pieces, _ = await collect(" ... !", cap=50, grace=10)
    assert pieces == []
    assert is_empty_reply(" ... !") and is_empty_reply("") and not is_empty_reply("👍")


def test_sentence_ends_skip_abbreviations_and_numbers() -> None:
    text = "Dr. Smith paid 3. Then e.g. this works. Yes! "
    assert [text[:end] for end in sentence_ends(text)] == [
        "Dr. Smith paid 3. Then e.g. this works.",
        "Dr. Smith paid 3. Then e.g. this works. Yes!",
    ]
    assert ends_mid_sentence("and the lighthouse keeper was able to keep")
    assert not ends_mid_sentence('He said "stop."') and not ends_mid_sentence("Cut here. …")
