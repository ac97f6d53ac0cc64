"""Facts a user states about themselves, found by rules (no model needed).

`extract_facts("My name is Priya and I live in Lisbon.")` gives two `Fact`s written in the third
person ("The user's name is Priya.", "The user lives in Lisbon."), each with a `key`: a newer fact
with the same key replaces an older one ("I moved to Porto" replaces Lisbon). Questions, requests
and statements about other people are not facts. `remembered(text)` makes one fact of a
`/remember` text; text is cleaned (control characters, template tokens, markup) and bounded.
It is over 300 lines because its rules and pronoun rewrites are tables that read as a whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_FACT_CHARS = 200  # one fact's text, after cleaning; longer statements are cut at a word
_VALUE = r"([^.!?;\n]{1,80}?)"  # a value ends at a sentence end, a clause break or " and I"
_END = r"(?=\s*(?:[.!?;,\n]|$|\s+and\s+(?:i|my|i'm)\b|\s+but\b|\s+so\b))"
_NAME = r"([A-Z][\w'\-]*(?:\s+[A-Z][\w'\-]*){0,2})"  # capitalised: "I'm Tom", not "I'm tired"
_ANY_NAME = r"([A-Za-z][\w'\-]*(?:\s+[A-Z][\w'\-]*){0,2})"  # after "my name is": "priya" too
_NOT_NAMES = {
    "a", "an", "the", "not", "so", "very", "just", "here", "fine", "good", "ok", "okay", "sorry",
    "tired", "happy", "sad", "back", "new", "sure", "done", "ready", "looking", "going", "trying",
    "glad", "also", "still", "really", "from", "in", "at", "on", "allergic", "working", "living",
}  # fmt: skip


@dataclass(frozen=True)
class Fact:
    key: str  # facts with the same key replace each other: "name", "home", "likes:tea", ...
    text: str  # third person: "The user's name is Priya."
    said: str = ""  # the user's own words in the third person, where `text` is a rule's

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "text": self.text, **({"said": self.said} if self.said else {})}


def _name(value: str) -> str | None:
    words = value.split()
    if not words or words[0].lower() in _NOT_NAMES:
        return None
    kept = [words[0]] + [w for w in words[1:3] if w[:1].isupper()]
    return " ".join(w[:1].upper() + w[1:] for w in kept)


# (pattern, key, template): a pattern runs on one sentence; the key may use {k} (the value,
# lower-cased) and {n} (the noun of "my <noun> is"), the template {v}, {n} and {a} (a/an).
_RULES: list[tuple[str, str, str]] = [
    (r"\b(?:my name(?:'s| is)|the name's|i am called|i'm called|i go by)\s+" + _ANY_NAME, "name",
     "The user's name is {v}."),
    (r"\b(?:call me|they call me|everyone calls me)\s+" + _NAME, "name",
     "The user's name is {v}."),
    (r"^(?:hi|hello|hey)?[,!\s]*(?:i am|i'm|im|this is)\s+" + _NAME + _END, "name",
     "The user's name is {v}."),
    (r"\bi(?: live| am living|'m living| reside| am based|'m based| stay) in\s+" + _VALUE + _END,
     "home", "The user lives in {v}."),
    (r"\bi(?:'ve| have)? (?:just )?(?:moved|relocated) to\s+" + _VALUE + _END, "home",
     "The user lives in {v}."),
    (r"\bmy (?:home|house|flat|apartment) is in\s+" + _VALUE + _END, "home",
     "The user lives in {v}."),
    (r"\b(?:i am|i'm|i come) from\s+" + _VALUE + _END, "from", "The user is from {v}."),
    (r"\bi (?:work|am working|'m working) (?:at|for)\s+" + _VALUE + _END, "employer",
     "The user works at {v}."),
    (r"\bi(?:'m| am) an? [a-z\- ]{2,40}? (?:at|for|with)\s+" + _VALUE + _END, "employer",
     "The user works at {v}."),
    (r"\bi (?:work|am working|'m working) as\s+(?:an?\s+)?" + _VALUE + _END, "role",
     "The user works as {a} {v}."),
    (r"\bmy (?:job|role|position|title|occupation) is\s+(?:an?\s+)?" + _VALUE + _END, "role",
     "The user works as {a} {v}."),
    (r"\bi(?:'m| am) an? ((?:[a-z\-]+ ){0,2}(?:engineer|developer|programmer|designer|teacher|"
     r"nurse|doctor|student|manager|lawyer|scientist|analyst|accountant|writer|artist|chef|"
     r"architect|consultant|researcher|pilot|farmer|musician|journalist|pharmacist|"
     r"electrician|mechanic|librarian|photographer|dentist|translator|officer|administrator|"
     r"intern|professor|worker|lead|director|specialist|technician|coordinator|assistant))\b",
     "role", "The user works as {a} {v}."),
    (r"\b(?:my (?:manager|boss|supervisor|line manager|team lead)(?:'s| is)|i report to)\s+"
     + _NAME, "manager", "The user's manager is {v}."),
    (r"\bi(?:'m| am) (?:very |severely |a bit )?allergic to\s+" + _VALUE + _END, "allergy:{k}",
     "The user is allergic to {v}."),
    (r"\bi have an? (?:allergy to|intolerance to)\s+" + _VALUE + _END, "allergy:{k}",
     "The user is allergic to {v}."),
    (r"\bi have an? ([a-z\- ]{2,30}?) (?:allergy|intolerance)" + _END, "allergy:{k}",
     "The user is allergic to {v}."),
    (r"\bi(?:'m| am) (vegetarian|vegan|pescatarian|gluten[- ]free|lactose intolerant|diabetic|"
     r"left[- ]handed|colou?r[- ]blind)\b", "diet:{k}", "The user is {v}."),
    (r"\bi(?:'m| am) (\d{1,3}) (?:years old|yo)\b", "age", "The user is {v} years old."),
    (r"\bmy (?:birthday|date of birth) is\s+(?:on\s+)?" + _VALUE + _END, "birthday",
     "The user's birthday is {v}."),
    (r"\bi (?:really )?(?:love|like|enjoy|adore)\s+" + _VALUE + _END, "likes:{k}",
     "The user likes {v}."),
    (r"\bi (?:prefer)\s+" + _VALUE + _END, "prefers:{k}", "The user prefers {v}."),
    (r"\bi (?:don't|do not|really don't) like\s+" + _VALUE + _END, "likes:{k}",
     "The user does not like {v}."),
    (r"\bi (?:hate|dislike|can't stand)\s+" + _VALUE + _END, "likes:{k}",
     "The user does not like {v}."),
    (r"\bmy favou?rite ([a-z ]{2,30}?) is\s+" + _VALUE + _END, "favourite:{n}",
     "The user's favourite {n} is {v}."),
    (r"\bmy ([a-z]+)'s name is\s+" + _ANY_NAME, "my:{n}", "The user's {n} is named {v}."),
    (r"\bmy ((?:[a-z]+ ){0,4}[a-z]+) is(?: (?:named|called))?\s+" + _VALUE + _END,
     "my:{n}", "The user's {n} is {v}."),
]  # fmt: skip


def _compile(pattern: str) -> re.Pattern[str]:
    """Case-insensitive, except that a name must be capitalised."""
    for name in (_NAME, _ANY_NAME):
        if name in pattern:
            head, tail = pattern.split(name, 1)
            return re.compile(f"(?i:{head}){name}" + (f"(?i:{tail})" if tail else ""))
    return re.compile(pattern, re.IGNORECASE)


_COMPILED = [(_compile(pattern), key, template) for pattern, key, template in _RULES]

_QUESTION_START = re.compile(
    r"^\s*(?:what|who|where|when|why|how|which|whose|do|does|did|is|are|am|can|could|would|"
    r"will|shall|should|tell me|remind me|say|guess|please tell)\b",
    re.IGNORECASE,
)
_NEGATED_OR_HYPOTHETICAL = re.compile(
    r"\b(?:if|suppose|imagine|pretend|would|wish|not my|isn't my|is not my|was my|used to)\b",
    re.IGNORECASE,
)
_NOT_ABOUT_USER = {
    "question", "problem", "point", "guess", "answer", "message", "bad", "pleasure", "turn",
    "fault", "mistake", "idea", "request", "goal", "task", "concern", "issue", "apologies",
}  # fmt: skip


def extract_facts(text: str) -> list[Fact]:
    """The facts stated in one message of the user about themselves; [] when there are none.

    Only first-person statements count; questions ("what is my name?"), hypotheticals and
    negations of a possession ("that's not my car") are skipped. Never raises.
    """
    facts: dict[str, Fact] = {}
    for sentence in _sentences(clean(text)[:2000]):
        if sentence.rstrip().endswith("?") or _QUESTION_START.match(sentence):
            continue
        if _NEGATED_OR_HYPOTHETICAL.search(sentence):
            continue
        for pattern, key, template in _COMPILED:
            for match in pattern.finditer(sentence):
                fact = _fact(match, key, template)
                if fact is not None and not any(
                    fact.key.startswith("my:") and k in ("name", "manager") for k in facts
                ):
                    facts.setdefault(fact.key, fact)
    # "my name is X" also matches the generic "my <noun> is" rule: keep the specific one.
    specific = {f.text for k, f in facts.items() if not k.startswith("my:")}
    return [f for k, f in facts.items() if not (k.startswith("my:") and f.text in specific)]


def _fact(match: re.Match[str], key: str, template: str) -> Fact | None:
    groups = [g for g in match.groups() if g is not None]
    if not groups:
        return None
    noun = groups[0].strip().lower() if len(groups) > 1 else ""
    value = _TRAILING_TIME.sub("", groups[-1].strip().strip("\"'“”").strip())
    if "{v}." in template and ("name" in template or "manager" in template):
        value = _name(value) or ""
    if not value or len(value) > 80:
        return None
    if noun and (noun.split()[-1] in _NOT_ABOUT_USER or noun in ("name", "manager", "boss")):
        if key == "my:{n}":
            return None
    value = third_person(value)
    article = "an" if value[:1].lower() in "aeiou" else "a"
    text = template.format(v=value, n=noun, a=article).replace("  ", " ")
    slug = re.sub(r"[^a-z0-9]+", " ", value.lower()).strip()
    return Fact(key.format(k=slug, n=noun), _bounded(text))


_TRAILING_TIME = re.compile(
    r"\s+(?:now|recently|yesterday|today|these days|last \w+|this \w+|since .*|for \w+ \w+|"
    r"\w+ ago|a while ago)$",
    re.IGNORECASE,
)
_PRONOUNS = [
    (r"\bi am\b|\bi'm\b", "the user is"),
    (r"\bi was\b", "the user was"),
    (r"\bi have\b|\bi've\b", "the user has"),
    (r"\bi'll\b|\bi will\b", "the user will"),
    (r"\bi'd\b", "the user would"),
    (r"\bi (can|could|should|must|might|may|would|will|shall|did|do not|don't)\b",
     r"the user \1"),
    (r"\bi ((?:really|also|just|always|never|usually|often|still|only|sometimes) )?(\w+)\b",
     None),  # a verb: "I fly" -> "the user flies"
    (r"\bmy\b", "the user's"),
    (r"\bmine\b", "the user's"),
    (r"\bmyself\b", "themselves"),
    (r"\bme\b", "the user"),
    (r"\bwe\b", "the user and others"),
    (r"\bour\b", "the user's"),
]  # fmt: skip


def third_person(text: str) -> str:
    """Rewrite first-person words as "the user" ("my flight is on Friday" -> "the user's flight
    is on Friday"), so a small model does not take the user's facts for its own."""
    for pattern, replacement in _PRONOUNS:
        if replacement is None:
            text = re.sub(pattern, _verb, text, flags=re.IGNORECASE)
        else:
            text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
    return text


def _verb(match: re.Match[str]) -> str:
    adverb, verb = match.group(1) or "", match.group(2)
    lower = verb.lower()
    if lower in ("do", "go"):
        verb += "es"
    elif lower.endswith("y") and len(lower) > 2 and lower[-2] not in "aeiou":
        verb = verb[:-1] + "ies"
    elif lower.endswith(("s", "sh", "ch", "x", "z")):
        verb += "es"
    else:
        verb += "s"
    return f"the user {adverb}{verb}"


def remembered(text: str) -> Fact | None:
    """The fact a `/remember <text>` (or "remember that ...") asks to keep, in the third person;
    None when nothing is left after cleaning."""
    body = clean(text)
    body = re.sub(
        r"^(?:please\s+)?(?:remember|note|keep in mind)(?:\s+that)?[:,]?\s*",
        "",
        body,
        flags=re.IGNORECASE,
    ).strip()
    if not body:
        return None
    stated = extract_facts(body)
    if len(stated) == 1:
        return stated[0]
    sentence = third_person(body.rstrip(" .!"))
    sentence = sentence[:1].upper() + sentence[1:] + "."
    key = "note:" + re.sub(r"[^a-z0-9]+", " ", sentence.lower()).strip()[:60]
    return Fact(key, _bounded(sentence))


_REMEMBER_REQUEST = re.compile(
    r"^\s*(?:please\s+)?(?:remember|note|keep in mind)(?:\s+that)?\b[:,]?\s*(.+)$",
    re.IGNORECASE | re.DOTALL,
)


def remember_request(text: str) -> Fact | None:
    """The fact of a chat message that asks to be remembered ("remember that my flight is on
    Friday"); None for other messages."""
    match = _REMEMBER_REQUEST.match(text)
    if match is None or match.group(1).strip().endswith("?"):
        return None
    return remembered(match.group(1))


_TEMPLATE_TOKEN = re.compile(
    r"<\|im_start\|>\s*(?:system|user|assistant)?|<\|[^|>]{0,40}\|>|</?s>|\[/?INST\]|<</?SYS>>",
    re.IGNORECASE,
)
_MARKUP = re.compile(r"<[^<>]{0,200}>|```|[*_`#>\[\]{}|]")


def clean(text: str) -> str:
    """Text safe to put in a prompt as one line: no control characters, chat-template tokens
    (<|im_start|>, [INST]) or markup (tags, code fences, markdown), whitespace collapsed."""
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = _TEMPLATE_TOKEN.sub(" ", text)
    text = _MARKUP.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


def _bounded(text: str) -> str:
    if len(text) <= MAX_FACT_CHARS:
        return text
    return text[:MAX_FACT_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+|\s*\n\s*", text) if s.strip()]


_OFTEN = r"(?:(?:always|usually|often|never|sometimes|also|really|just|still|only) )?"
_SECOND_PERSON = [
    (r"\bthe user and their family\b", "you and your family"),
    (r"\bthe user's\b", "your"),
    (r"\bthe user is\b", "you are"),
    (r"\bthe user was\b", "you were"),
    (r"\bthe user has\b", "you have"),
    (r"\bthe user does\b", "you do"),
    (rf"\bthe user ({_OFTEN})(\w+?)(?:ies)\b", r"you \1\2y"),  # "the user often flies"
    (rf"\bthe user ({_OFTEN})(\w+(?:ss|sh|ch|x|z|o))es\b", r"you \1\2"),
    (rf"\bthe user ({_OFTEN})(\w+?)s\b", r"you \1\2"),
    (r"\bthe user\b", "you"),
]


def second_person(text: str) -> str:
    """A kept fact as said to the user: "The user's name is Priya." -> "Your name is Priya."."""
    for pattern, replacement in _SECOND_PERSON:
        text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
    return text[:1].upper() + text[1:]
