"""Questions about the user that the kept facts answer, without the model.

`answer_from_facts("What is my name and where do I live?", facts)` gives "From what you told me:
your name is Priya. You live in Lisbon." when the facts say so, and None when the message is not
such a question or a part of it has no matching fact (the model answers then). A small model
ignores facts in its prompt about half the time; a lookup does not.

Matching is by content words: the question's words (less question words and pronouns) against a
fact's text and key, equal after a light stemming or in the same group of a small synonym table
of common slots (name, home, work, role, manager, allergies, diet, age, likes...). The words of a
"my ..." phrase ("my gym locker number") must all match, and at least half of the question's
content words. Advice questions ("what should I ...", "how do I ...") and questions about
something *of* the user's thing ("the capital of my country") are not lookups.
`relevant_facts` is the looser match: facts sharing a content word with the message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dialogs.memory.user_facts import second_person
from dialogs.text import STOPWORDS, base_form

MAX_ANSWER_FACTS = 3
ANSWER_LEAD = "From what you told me: "

_SLOTS = [  # words that name the same slot of a fact
    "name named call called calls addressed nickname",
    "live lives living home based located location city town reside resides stay moved",
    "from origin hometown country born grew",
    "work works working employer employ employs employed company firm organisation "
    "organization business",
    "job role profession occupation position title career work works",
    "manager boss supervisor report reports lead leads",
    "allergy allergies allergic intolerance intolerant",
    "diet vegetarian vegan pescatarian eat",
    "age old",
    "birthday born birth",
    "like likes love loves enjoy enjoys favourite favorite prefer prefers hobby fan",
    "wife husband partner spouse",
]
# Besides function words, the words of asking about oneself ("remind me what I told you").
_STOP = STOPWORDS | set(
    "whats am im i'm again remind tell told know knew please currently still days best actually "
    "exactly remember recall mention mentioned forgot forget sorry check said say idea think "
    "guess".split()
) - {word for line in _SLOTS for word in line.split()}  # a slot's words always count
_WORD = re.compile(r"[a-z0-9][a-z0-9'\-:]*")
_ABOUT_USER = re.compile(r"\b(?:my|i|me|i'm|im|mine)\b", re.IGNORECASE)
_QUESTION = re.compile(
    r"^\s*(?:(?:can|could) you |do you |please |and |so |sorry,? )*"
    r"(?:what|who|where|when|which|whose|how old|how much|how many|do|does|did|am|is|are|"
    r"tell me|remind me|any idea)\b",
    re.IGNORECASE,
)
_ADVICE = re.compile(
    r"\b(?:should|could|can|would|might|shall|must) i\b|\bhow (?:do|can|to)\b", re.IGNORECASE
)
_MY_PHRASE = re.compile(r"(?:\b(\w+)\s+)?\bmy\s+((?:[a-z'\-]+\s*){1,4})", re.IGNORECASE)
_PREPOSITIONS = {"of", "for", "about", "near", "with", "to", "from", "in", "at", "on", "by"}
_CLAUSES = re.compile(
    r"\s*(?:,|;|\band\b|\balso\b)\s*(?=(?:what|who|where|when|which|how|do|does|did|is|am|my)\b)",
    re.IGNORECASE,
)


_GROUPS = [frozenset(base_form(w) for w in line.split()) for line in _SLOTS]


def _match(a: str, b: str) -> bool:
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    if len(short) >= 5 and long.startswith(short):
        return True
    return any(a in group and b in group for group in _GROUPS)


def _content(text: str) -> list[str]:
    text = re.sub(r"\bfor a living\b", " job ", text.lower())
    return [
        base_form(w) for w in _WORD.findall(text) if w not in _STOP and base_form(w) not in _STOP
    ]


def _fact_words(fact: dict[str, str]) -> tuple[set[str], set[str]]:
    text = fact["text"].lower().replace("the user's", " ").replace("the user", " ")
    key = re.split(r"[:\s]+", fact.get("key", "").lower())
    return set(_content(text)), {base_form(w) for w in key if w and w not in ("my", "note")}


def _required(clause: str) -> list[str] | None:
    """The words of the clause's "my ..." phrase that a fact must match ([] without one); None
    when the phrase is the object of a preposition (asked *about* the user's thing)."""
    match = _MY_PHRASE.search(clause)
    if match is None:
        return []
    before = (match.group(1) or "").lower()
    if before in _PREPOSITIONS and not re.search(r"\bremind me of\b", clause, re.IGNORECASE):
        return None
    words = re.split(r"\s+", match.group(2).strip())
    phrase: list[str] = []
    for word in words:
        lowered = word.lower()
        if lowered in _STOP or lowered in _PREPOSITIONS:
            break
        phrase.append(word)
        if lowered.endswith("'s"):  # "my dog's name": the dog is what is asked about
            break
    return [w for w in _content(" ".join(phrase))]


def _score(words: list[str], required: list[str], fact: dict[str, str]) -> float:
    text, key = _fact_words(fact)
    matched = [w for w in words if any(_match(w, f) for f in text | key)]
    if not matched or 2 * len(matched) < len(words):
        return 0.0
    if any(not any(_match(w, f) for f in text | key) for w in required):
        return 0.0
    return len(matched) + 0.5 * sum(any(_match(w, k) for k in key) for w in words)


def _answers(clause: str, facts: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    required = _required(clause)
    words = _content(clause)
    if required is None or not words:
        return []
    scored = [(_score(words, required, fact), index) for index, fact in enumerate(facts)]
    best = max((score for score, _ in scored), default=0.0)
    if best <= 0:
        return []
    chosen = [index for score, index in scored if score == best][-MAX_ANSWER_FACTS:]
    return [facts[index] for index in chosen]


def is_question_about_user(text: str) -> bool:
    """A question the user asks about themselves ("what's my ...", "where do I ...")."""
    question = text.strip()
    if not _ABOUT_USER.search(question) or _ADVICE.search(question):
        return False
    return question.endswith("?") or bool(_QUESTION.match(question))


def answer_from_facts(text: str, facts: Sequence[dict[str, str]]) -> str | None:
    """The answer to a question about the user from `facts` (dicts with "text" and "key", in the
    third person, oldest first); None when it is not such a question or a part is unanswered."""
    if not facts or len(text) > 300 or not is_question_about_user(text):
        return None
    chosen: list[dict[str, str]] = []
    for clause in _CLAUSES.split(text.strip()):
        if not _ABOUT_USER.search(clause):
            continue
        found = _answers(clause, facts)
        if not found:
            return None
        chosen.extend(fact for fact in found if fact not in chosen)
    if not chosen:
        return None
    sentences = [second_person(fact["text"]) for fact in chosen]
    first = sentences[0]
    if first.startswith(("Your ", "You ")):
        sentences[0] = first[:1].lower() + first[1:]
    return ANSWER_LEAD + " ".join(sentences)


def relevant_facts(text: str, facts: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """The facts (at most MAX_ANSWER_FACTS, newest) that share a content word with `text`."""
    words = _content(text)
    found = [
        fact
        for fact in facts
        if any(_match(w, f) for w in words for part in _fact_words(fact) for f in part)
    ]
    return found[-MAX_ANSWER_FACTS:]
