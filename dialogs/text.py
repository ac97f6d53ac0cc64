"""Words, stopwords, stems and sentences: the one place botloom splits text for word matching
(passage focus, citations, the grounding guard, answers from facts, lexical search)."""

from __future__ import annotations

import re

# English function words: too common to say what a question or a passage is about.
STOPWORDS = frozenset(
    "a about also an and any are as at be been being but by can could did do does each every "
    "for from had has have how i in into is it its just long many may me might more most much "
    "must my not now of on only or our really so some such than that the their them then there "
    "these they this those to very was we were what when where which who whom whose why will "
    "with would you your yours".split()
)

# The words a lexical search leaves out of its query: fewer than STOPWORDS, since a search term
# that finds nothing costs nothing while a dropped one may have ranked the right chunk first.
SEARCH_STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it its me my of on or our so "
    "that the their there this to was we what when where which who why will with you your "
    "much many long".split()
)

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def stem(word: str) -> str:
    """A word's first five letters, lower-cased, without a possessive: warranties ~ warranty."""
    word = word.lower().replace("’", "'")
    return word.removesuffix("'s")[:5]


def base_form(word: str) -> str:
    """A word without its plural or verb ending: allergies ~ allergy, lives ~ live."""
    word = word.lower().strip("'-:")
    word = re.sub(r"'s$|s'$", "", word)
    for suffix, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", "e"), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)] + replacement
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def sentences(text: str) -> list[str]:
    """`text`'s sentences, their whitespace collapsed: split after . ! or ?, and where a
    paragraph ends (a blank line: a list item or a table row of a document is one)."""
    return [
        sentence
        for paragraph in _PARAGRAPH_BREAK.split(text)
        if paragraph.strip()
        for sentence in _SENTENCE_BREAK.split(" ".join(paragraph.split()))
    ]
