"""A reply from passages must say what they say: where the model's reply states a number or a
name the passages (and the question) do not contain, or repeats few of their words, the answer
is the passages' own sentences about the question instead (extractive).

The embedded 135M model reads the right sentence but often misquotes it ("27 days" becomes "4",
"Vaultling" becomes "Vaulting"); quoting the document is then the honest answer, and its
citation lets the user read the rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dialogs.knowledge.grounding import focus, shown_texts
from dialogs.knowledge.passages import Passage
from dialogs.text import STOPWORDS, stem

MIN_SHARED = 0.5  # a reply whose content words are less than half the sources' is not theirs
# A question that asks for a quantity wants a number in its answer.
_QUANTITY = re.compile(
    r"\bhow (?:many|much|long|often|old|far|big|heavy)\b|\bwhat time\b|\b(?:which|what) year\b|"
    r"\bat what\b|\bwithin how\b",
    re.IGNORECASE,
)

_MARKER = re.compile(r"\[\d{1,2}\]")
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_NUMBER_WORDS = (
    {
        word: str(value)
        for value, word in enumerate(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
            "fifteen sixteen seventeen eighteen nineteen twenty".split()
        )
    }
    | {
        word: str(value)
        for value, word in zip(
            range(30, 100, 10),
            "thirty forty fifty sixty seventy eighty ninety".split(),
            strict=True,
        )
    }
    | {"hundred": "100", "thousand": "1000"}
)
_COMPOUND = re.compile(
    r"\b(twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)[- ]"
    r"(one|two|three|four|five|six|seven|eight|nine)\b"
)
# The prompt's own words ("Read this text and answer the question") are no evidence either.
_COMMON = STOPWORDS | {"all", "answer", "here", "question", "should", "text"}


def numbers(text: str) -> set[str]:
    """The numbers `text` states, normalised: "2,450" -> "2450", "02:30" -> "2:30", "seven"
    -> "7", "twenty-seven" -> "27"."""
    text = _COMPOUND.sub(
        lambda m: str(int(_NUMBER_WORDS[m.group(1)]) + int(_NUMBER_WORDS[m.group(2)])),
        text.lower(),
    )
    found = set()
    for match in _NUMBER.finditer(text):
        digits = match.group(0).replace(",", "")
        head, colon, rest = digits.partition(":")
        found.add(str(int(head)) + colon + rest if head.isdigit() else digits)
    for word in re.findall(r"[a-z]+", text):
        if word in _NUMBER_WORDS:
            found.add(_NUMBER_WORDS[word])
    return found


def _bare(word: str) -> str:
    """A word in lower case without a possessive or a plural s: Wednesdays ~ Wednesday."""
    word = word.lower().replace("’", "'").removesuffix("'s")
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def names(text: str) -> set[str]:
    """The capitalised words of `text` that do not start a sentence (names, products...),
    spelled out in full: a misspelt name is a different name."""
    found = set()
    for sentence in re.split(r"(?<=[.!?:;])\s+|\n+", _MARKER.sub("", text)):
        for word in _WORD.findall(sentence)[1:]:
            if word[0].isupper() and word != "I":
                found.add(_bare(word))
    return found


def content_words(text: str) -> set[str]:
    words = {w.lower() for w in _WORD.findall(_MARKER.sub("", text))}
    return {stem(w) for w in words if len(w) > 2 and w not in _COMMON}


def unsupported(reply: str, passages: Sequence[Passage], question: str) -> list[str]:
    """Why `reply` is not supported by what the prompt showed of `passages` (with their titles
    and headings, and the question): the numbers and names it states that they lack, no number
    of theirs where the question asks for a quantity, or too few of their words; [] when it
    is."""
    titles = [f"{p.title} {p.heading}" for p in passages]
    source = " ".join([question, *titles, *shown_texts(passages, question)])
    stated = numbers(_MARKER.sub("", reply))
    why = [f"number {n}" for n in sorted(stated - numbers(source))]
    if _QUANTITY.search(question) and not stated & (numbers(source) - numbers(question)):
        why.append("no number for a question about a quantity")
    known = content_words(source)
    spelled = {_bare(w) for w in _WORD.findall(source)}
    why += [f"name {n}" for n in sorted(names(reply) - spelled)]
    words = content_words(reply)
    if words and len(words & known) < MIN_SHARED * len(words):
        why.append(f"{len(words & known)}/{len(words)} words from the sources")
    return why


def extractive_answer(passages: Sequence[Passage], question: str) -> str:
    """The best passage's sentences about `question` (what the prompt showed the model)."""
    return (passages[0].focus or focus(passages[0].text, question)) if passages else ""


def grounded_answer(reply: str, passages: Sequence[Passage], question: str) -> str:
    """`reply` when there are no passages or it is supported by them; else the extractive
    answer. An empty reply stays empty (the dialog retries it)."""
    if not passages or not reply.strip() or not unsupported(reply, passages, question):
        return reply
    return extractive_answer(passages, question) or reply
