"""The user's facts by meaning, with the embedding model: which fact answers a question about the
user, whether a message asks for everything known about the user, and which fact a correction
replaces.

Every text is embedded once (an LRU of vectors, so a turn embeds only its new texts, in one call)
and compared by cosine similarity. The thresholds are calibrated for all-MiniLM-L6-v2, the
embedded default, on the memory sets beside the code and bench/data/memory_calibration.json
(`bench/memory_calibrate.py` prints the scores, to recalibrate for another embedding model).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from dialogs.memory.statements import Statement
from dialogs.memory.user_facts import Fact, second_person

Embed = Callable[[Sequence[str]], Awaitable[np.ndarray]]

ANSWER_MIN = 0.45  # question to fact: at or above, the fact answers the question
CLOSEST_MIN = 0.25  # below ANSWER_MIN but at this or above: said as the closest thing known
ANSWER_MARGIN = 0.06  # facts this close to the best answer too ("what pets do I have?")
MAX_ANSWER_FACTS = 3
ABOUT_ME_MIN = 0.72  # message to the nearest phrasing of "what do you know about me?"
CORRECTS_MIN = 0.55  # a correction to the fact it corrects
RESTATES_MIN = 0.9  # a statement to a fact it only restates (kept once, the newest words)
CACHE_SIZE = 4096

ABOUT_ME = (
    "What do you know about me?",
    "What have I told you about myself?",
    "What do you remember about me?",
    "Tell me everything you know about me.",
    "What information do you have about me?",
    "Summarise what you know about me.",
    "What have you learned about me so far?",
)
NOT_ABOUT_ME = (  # near in words, not in intent: the bot itself, a topic, one fact
    "Tell me about yourself.",
    "What do you know about this topic?",
    "What is my name?",
    "What do you think about me?",
)
_ABOUT_ME_GATE = re.compile(r"\b(?:me|myself|i|my)\b", re.I)  # and a question or a request:
_ASKING = re.compile(
    r"\?\s*$|^\W*(?:so |ok |okay |and |hey |hi )?"
    r"(?:what|who|which|how|do|does|can|could|would|will|tell|list|show|remind|summari[sz]e|give|say|share|recap)\b",
    re.I,
)
_QUESTION_LEAD = re.compile(
    r"^(?:(?:sorry|ok|okay|so|and|hey|hi|quick question|please)\b[,!:\s]*)*"
    r"(?:(?:can|could) you (?:please )?(?:remind me|tell me)|do you (?:remember|know|recall)|"
    r"remind me|tell me|any idea)?\s*(?:,\s*)?",
    re.I,
)
_ADVICE = re.compile(
    r"\b(?:should|could|can|would|might|shall|must) i\b|\bhow (?:do|can|to|should)\b|"
    r"^\W*(?:help|suggest|recommend|give|write|plan|make|explain)\b",
    re.I,
)
_REQUEST_ME = re.compile(r"\b(?:tell|show|give|let|help|remind|send|get|find|teach) me\b", re.I)
_CLAUSES = re.compile(
    r"\s*(?:;|,?\s*\band\b|,?\s*\balso\b)\s*(?=(?:what|who|where|when|which|how|do|does|did|is|am)\b)",
    re.I,
)
_TYPES = {
    "time": r"\b\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)|\b\d{1,2}:\d{2}\b|"
    r"\bnoon\b|\bmidnight\b",
    "weekday": r"\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b",
    "date": r"\b\d{1,2}(?:st|nd|rd|th)?(?: of)? (?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
    r"[a-z]*\b|\b(?:january|february|march|april|may|june|july|august|september|october|"
    r"november|december)(?: \d{1,2}(?:st|nd|rd|th)?)?\b",
    "number": r"\b\d+(?:[.,]\d+)?\b",
    "name": r"(?<=\s)[A-Z][\w'\-]*(?: [A-Z][\w'\-]*)*",
}


class FactMeaning:
    """Matches messages to facts by the cosine similarity of their embeddings (`embed`: texts to
    unit-length rows, off the event loop: models.embeddings.EmbeddingWorker.embed)."""

    def __init__(self, embed: Embed, *, cache_size: int = CACHE_SIZE) -> None:
        self._embed = embed
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    async def warm(self, texts: Sequence[str]) -> None:
        """Embed, in one call, those of `texts` not embedded yet."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, row in zip(missing, await self._embed(missing), strict=True):
                self._cache[text] = row
        for text in texts:
            self._cache.move_to_end(text)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def similarities(self, text: str, others: Sequence[str]) -> np.ndarray:
        await self.warm([text, *others])
        if not others:
            return np.zeros(0, dtype=np.float32)
        return np.stack([self._cache[o] for o in others]) @ self._cache[text]

    async def warm_question(self, text: str, facts: Sequence[dict[str, str]]) -> None:
        """Embed at once what `is_about_me` and `answers` compare for `text`: one model call."""
        forms = [form for fact in facts for form in _forms(fact)]
        await self.warm([text, *(query_form(c) for c in _clauses(text)), *forms])

    async def is_about_me(self, text: str) -> bool:
        """A request for everything known about the user ("what do you know about me?")."""
        if len(text) > 200 or not asks_about_user(text):
            return False
        scores = await self.similarities(text, [*ABOUT_ME, *NOT_ABOUT_ME])
        best = float(scores[: len(ABOUT_ME)].max())
        return best >= ABOUT_ME_MIN and best > float(scores[len(ABOUT_ME) :].max())

    async def fact_scores(self, text: str, facts: Sequence[dict[str, str]]) -> np.ndarray:
        """Each fact's similarity to `text`: the best of its rule's text and the user's words."""
        forms = [_forms(fact) for fact in facts]
        flat = [form for group in forms for form in group]
        scores = await self.similarities(text, flat)
        out, start = np.zeros(len(facts), dtype=np.float32), 0
        for index, group in enumerate(forms):
            out[index] = scores[start : start + len(group)].max()
            start += len(group)
        return out

    async def answers(
        self, question: str, facts: Sequence[dict[str, str]]
    ) -> tuple[list[dict[str, str]], float]:
        """The facts that answer each part of `question`, best first, and the lowest part's best
        score; ([], 0.0) when a part has no fact at CLOSEST_MIN or above."""
        chosen: list[dict[str, str]] = []
        lowest = 1.0
        for clause in _clauses(question):
            scores = await self.fact_scores(query_form(clause), facts)
            top = float(scores.max()) if len(scores) else 0.0
            if top < CLOSEST_MIN:
                return [], 0.0
            lowest = min(lowest, top)
            floor = max(CLOSEST_MIN, top - ANSWER_MARGIN)
            best = [int(i) for i in np.argsort(-scores) if scores[i] >= floor][:MAX_ANSWER_FACTS]
            chosen.extend(facts[i] for i in best if facts[i] not in chosen)
        return chosen, lowest

    async def plan(
        self, statements: Sequence[Statement], kept: Sequence[dict[str, str]]
    ) -> tuple[list[Fact], set[str]]:
        """The facts to add for `statements` and the texts of the kept facts they replace: a
        correction replaces the fact holding its old value, else the most similar one (at
        CORRECTS_MIN); any statement replaces a fact it restates (RESTATES_MIN)."""
        texts = [fact["text"] for fact in kept]
        new: list[Fact] = []
        replaced: set[str] = set()
        for statement in statements:
            if statement.fact is None:
                fact, old = await self._bare_correction(statement, kept)
                if fact is not None:
                    new.append(fact)
                    replaced.add(old)
                continue
            target = _holding(statement.replaces, texts) if statement.replaces else None
            if target is None:  # the same sentence with another value: an update
                target = next(
                    (t for t in reversed(texts) if _masked(t) == _masked(statement.fact.text)), None
                )
            if target is None and texts:
                scores = await self.fact_scores(fact_form(statement.fact.text), kept)
                best = int(scores.argmax())
                floor = CORRECTS_MIN if statement.correction else RESTATES_MIN
                target = texts[best] if scores[best] >= floor else None
            if target is not None:
                replaced.add(target)
            new.append(statement.fact)
        return new, replaced

    async def _bare_correction(
        self, statement: Statement, kept: Sequence[dict[str, str]]
    ) -> tuple[Fact | None, str]:
        """ "Actually it's Friday": the kept fact with a value of the same kind (a day, a time,
        a date, a number, a name) nearest to the correction, with the new value in place."""
        kind = value_kind(statement.value)
        if kind is None:
            return None, ""
        held = (
            _holding(statement.replaces, [f["text"] for f in kept]) if statement.replaces else None
        )
        candidates = [f for f in kept if _find(kind, f["text"])]
        if held is not None:
            candidates = [f for f in kept if f["text"] == held]
        if not candidates:
            return None, ""
        scores = await self.similarities(statement.said, [f["text"] for f in candidates])
        target = candidates[int(scores.argmax())]
        text = _put_value(target["text"], kind, statement.value, statement.replaces)
        said = target.get("said", "")
        if said and _find(kind, said):
            said = _put_value(said, kind, statement.value, statement.replaces)
        else:
            said = ""
        return Fact(target["key"] or "said:" + text.lower()[:60], text, said), target["text"]


def _clauses(question: str) -> list[str]:
    return [c for c in _CLAUSES.split(question.strip()) if c.strip()] or [question]


def _forms(fact: dict[str, str]) -> list[str]:
    """A fact as compared: its text and, where a rule rewrote them, the user's own words."""
    return [fact_form(fact["text"]), *([fact_form(fact["said"])] if fact.get("said") else [])]


def asks_about_user(text: str, facts: Sequence[dict[str, str]] = ()) -> bool:
    """A question or request about the user ("what's my …", "where do I …", "remind me …"), or
    about someone or something a fact names ("when is Oscar's birthday?")."""
    if not _ASKING.search(text.strip()):
        return False
    if _ABOUT_ME_GATE.search(_REQUEST_ME.sub(" ", text)):  # not the "me" of "tell me about X"
        return True
    names = {n.lower() for n in re.findall(r"(?<=\s)[A-Z][\w\-]+", text)}
    return any(name in fact["text"].lower().split() for fact in facts for name in names)


def is_advice(text: str) -> bool:
    """Advice or help the user asks for ("what should I …", "how do I …"): not a lookup."""
    return bool(_ADVICE.search(text))


def query_form(question: str) -> str:
    """A question as compared with facts: its lead-in dropped ("can you remind me")."""
    return _QUESTION_LEAD.sub("", question.strip()).strip() or question


def fact_form(text: str) -> str:
    """A fact as compared with questions: said to the user ("The user has a cat" -> "You have a
    cat"), which scores closer to the user's "my"/"I" questions than "the user" does."""
    return second_person(text)


def value_kind(value: str) -> str | None:
    """The kind of a corrected value: time, weekday, date, number or name (None for others)."""
    for kind, pattern in _TYPES.items():
        flags = 0 if kind == "name" else re.I
        if re.fullmatch(pattern.replace("(?<=\\s)", ""), value.strip(), flags):
            return kind
    return None


def _masked(text: str) -> str:
    """A fact with its values (names, numbers, days, dates, times) masked."""
    for kind in _TYPES:
        text = re.sub(_TYPES[kind], "#", text, flags=0 if kind == "name" else re.I)
    return text.lower()


def _find(kind: str, text: str) -> list[re.Match[str]]:
    """The values of a kind in a text (names are capitalised; the rest any case)."""
    return list(re.finditer(_TYPES[kind], text, 0 if kind == "name" else re.I))


def _holding(value: str, texts: Sequence[str]) -> str | None:
    """The newest of `texts` that holds `value` as a whole word."""
    pattern = re.compile(r"\b" + re.escape(value) + r"\b", re.I)
    return next((text for text in reversed(texts) if pattern.search(text)), None)


def _put_value(text: str, kind: str, value: str, old: str) -> str:
    if old and re.search(r"\b" + re.escape(old) + r"\b", text, re.I):
        return re.sub(r"\b" + re.escape(old) + r"\b", value, text, flags=re.I)
    last = _find(kind, text)[-1]
    return text[: last.start()] + value + text[last.end() :]
