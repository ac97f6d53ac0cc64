"""Statements a user makes about their own life, kept in their own words, in the third person.

`life_statements("Oh, I have a cat called Pixel!")` gives one `Statement` whose fact is "The user
has a cat called Pixel." (key "said:…"). A clause the rules of user_facts.py read ("my name is
Priya") gives the rules' keyed facts instead. Only what the user says about themselves, their
pets, things, plans and the people of their family counts. Skipped: questions, requests,
hypotheticals and wishes, quotes and reported speech, jokes, role-play and fiction, remarks about
the conversation ("I think…", "I'm not sure"), statements with no first person ("Cats are great")
and statements about other people ("My friend has a cat"): of a friend, colleague or neighbour only
their name is kept, of family only who they are (name, age, job, where they live), never what they
own, like or say.

A correction ("Actually, it's Friday, not Thursday.", "Sorry, my parrot is called Kiwi") is a
`Statement` with `correction` set, its old value (after "not") in `replaces`; "it's Friday" alone
has no first person, so it carries only the new value (`value`) for the memory to put in place of
the corrected fact's (dialogs/memory/meaning.py finds which fact it corrects).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dialogs.memory.user_facts import MAX_FACT_CHARS, Fact, clean, extract_facts, third_person


@dataclass(frozen=True)
class Statement:
    fact: Fact | None  # None for a bare correction ("actually it's Friday")
    correction: bool = False
    replaces: str = ""  # the old value a correction names ("…, not Thursday")
    value: str = ""  # a bare correction's new value
    said: str = ""  # the sentence as the user wrote it


_I = re.compile(
    r"\b(?:i|i'm|im|i've|i'd|i'll|my|me|mine|myself|we|we're|we've|our|ours|the name(?:'s| is))\b",
    re.I,
)
_QUESTION = re.compile(
    r"^(?:what|who|where|when|why|how|which|whose|do|does|did|is|are|am|can|could|would|will|"
    r"shall|should|have you|has|any idea)\b",
    re.I,
)
_REQUEST = re.compile(
    r"^(?:please|pls|kindly|write|translate|tell|give|make|help|explain|list|show|describe|"
    r"summari[sz]e|compose|create|draft|generate|suggest|recommend|find|calculate|convert|check|"
    r"let's|let us|remind|say|repeat|imagine|pretend|act|play|continue|rewrite|fix|correct)\b"
    r"|\bi(?:'d| would| want| need)(?: like)? (?:you|help)\b|\bhelp me\b|\bcan you\b|\bcould you\b",
    re.I,
)
_IRREALIS = re.compile(
    r"\b(?:if|suppose|supposing|imagine|imagining|pretend|pretending|would|i'd|wish|hope|hoping|"
    r"hypothetically|what if|let's say|dream|dreaming|fantasy|someday|one day|might|maybe|"
    r"perhaps|wonder|wondering|considering|thinking (?:of|about)|not my|isn't my|is not my|"
    r"used to|was my)\b",
    re.I,
)
_REPORTED = re.compile(
    r"\b(?:said|says|say|saying|told|tells|asked|asks|wrote|writes|quote|quoting|lyrics?|"
    r"according to|sings|sang|line from|fiction|fictional|roleplay|role-play|role play|poem|"
    r"in character|my character|in (?:my|the|a|this|our) (?:story|novel|book|film|movie|game|"
    r"dream|script|play))\b",
    re.I,
)
_I_SUBJECT = re.compile(r"\b(?:i|i'm|im|i've|i'd|i'll|we|we're|we've|the name(?:'s| is))\b", re.I)
_MY_SUBJECT = re.compile(
    r"^(?:(?:last|this|next|every) \w+,? |(?:yesterday|today|recently|nowadays|these days),? )?"
    r"(?:my|our)\b",
    re.I,
)
_CALL_ME = re.compile(r"\b(?i:call me|calls me)\s+[A-Z]")
_LAUGH = re.compile(r"\s*\b(?:lol|lmao|rofl|haha\w*|hehe\w*)\b|\s*[😂🤣]", re.I)
_IDENTITY_CLAIM = re.compile(r"^(?:i'm|i am|im)\b", re.I)
_QUOTED = re.compile(r"[\"“«]([^\"”»]*)[\"”»]")
_JOKE = re.compile(  # a retraction or irony marker, not laughter ("lol" is a tone, often sincere)
    r"\b(?:jk|j/k|kidding|joking|joke|sarcasm|sarcastic|yeah right|as if|not really|"
    r"in my dreams)\b|/s\b|[🙃😜😉]",
    re.I,
)
_CHATTER = re.compile(
    r"^(?:i|i'm|i am) (?:think|guess|believe|suppose|mean|see|understand|agree|disagree|know|"
    r"don't know|do not know|don't understand|do not understand|not sure|am not sure|'m not sure|"
    r"just asking|asking|curious|confused|lost|stuck|sorry|glad|back|here|fine|good|great|ok|"
    r"okay|ready|done|tired|bored|hungry|sleepy|busy|happy|sad|excited|stressed|wondering|"
    r"was wondering|need|want|have a question|got a question|appreciate|love (?:it|that|this)|"
    r"like (?:it|that|this)|hate (?:it|that|this))\b",
    re.I,
)
_GENERIC_WE = re.compile(r"\bwe (?:all|humans|people|as)\b|\beveryone\b|\bnobody\b", re.I)
_LEAD = re.compile(
    r"^(?:(?:hi there|hello there|hey there|hi|hello|hey|good (?:morning|afternoon|evening)|"
    r"oh|so|well|also|and|but|anyway|btw|by the way|fyi|ok|okay|yeah|yes|"
    r"right|fun fact|quick update|update|guess what|just so you know|just to let you know|"
    r"for the record|for context|ugh|phew|wow|haha|actually|correction|sorry|oops|wait|no|nope|"
    r"my mistake|i meant|i mean|to be clear|just fyi|thanks|thank you)\b[\s,:;!.\-–—]*)+",
    re.I,
)
_CORRECTION = re.compile(
    r"\b(?:actually|correction|i meant|i mean|sorry|oops|wait|my mistake|i got (?:that|it) wrong|"
    r"i was wrong|changed|no longer|anymore|now|update|moved)\b|^no\b|,\s*not\b|"
    r"\b(?:rather than|instead of)",
    re.I,
)
_OLD_VALUE = re.compile(
    r"[,;]?\s*(?<!\bdo)(?<!\bdoes)(?<!\bdid)(?<!\bam)(?<!'m)(?<!\bis)(?<!\bare)(?<!\bwas)"
    r"(?<!\bcan)(?<!\bwill)(?<!\bhave)(?<!\bhas)(?<!\bcould)\s*\b(?:not|rather than|instead of)\s+"
    r"(?:on |at |in |the |a |an )?"
    r"([^,.;!?]{1,40}?)\s*(?=[,.;!?]|$|\s+but\b)",
    re.I,
)
_BARE = re.compile(
    r"^(?:it(?:'s| is| was)|that(?:'s| is)|he(?:'s| is)|she(?:'s| is)|they(?:'re| are)|"
    r"(?:the|that|this) [\w' ]{1,30}? (?:is|'s|was|will be)|(?:his|her|its|their) name is)"
    r"\s+(?:actually\s+|now\s+|moved to\s+)?"
    r"(?:called\s+|named\s+|on\s+|at\s+|in\s+)?(.{1,60}?)[\s.!]*$",
    re.I,
)
_CLAUSE = re.compile(
    r"\s*(?:[,;]\s*|\s)(?:and|but|so|because|since|while|although|though)\s+(?=(?:i|i'm|i've|"
    r"i'll|my|we|we're|our)\b)|;\s*",
    re.I,
)
_PAST = (
    "went got had made tore broke bought met took saw began became grew left lost won came ran "
    "wrote read spent fell flew drove gave found kept sold built taught sent swam rode spoke"
).split()
# People of the user's life: of family only who they are, of the others only their name.
FAMILY = (
    "mother mum mom mummy mommy dad father daddy parents sister brother sibling siblings son "
    "daughter kids kid children child baby babies twins wife husband partner spouse girlfriend "
    "boyfriend fiance fiancé fiancee fiancée grandma grandmother gran granny grandpa grandfather "
    "grandparents aunt uncle niece nephew cousin stepson stepdaughter stepmother stepfather "
    "manager boss supervisor"
).split()
OTHERS = (
    "friend friends colleague colleagues coworker coworkers co-worker neighbour neighbor "
    "neighbours neighbors roommate flatmate housemate classmate classmates teacher mate buddy "
    "pal mates doctor dentist teammate teammates landlord landlady client clients"
).split()
_PERSON = re.compile(
    r"\b(?:my|our)\s+(?:(?:best|older|younger|little|big|elder|oldest|youngest|new|old|"
    r"step|twin|late|ex)[\s-])*(" + "|".join(FAMILY + OTHERS) + r")(?:'s|s')?\b"
    # a person, not a thing of theirs ("my dentist appointment"): a name, a verb or a break next
    r"(?=\s*$|\s*[,.;:!'’(]|\s+(?-i:[A-Z])|\s+(?:is|are|was|were|has|have|had|can|will|just|"
    r"also|recently|never|always|\w+s|\w+ed|" + "|".join(_PAST) + r")\b)",
    re.I,
)
_OTHER_THAN_USER = re.compile(r"\b(?:" + "|".join(OTHERS) + r")(?:'s| who| that| which)\b", re.I)
_NAMING = re.compile(r"(?:is |'s |are )?(?:called|named)\b|(?:'s )?name is\b|goes by\b")
_IDENTITY_VERBS = (  # of family: their name, age, job, and where they live or study
    "turned turns turn works work lives live studies study started starts graduated teaches "
    "teach called named"
).split()
_COPULA = ("is", "are", "was", "were")
_WITH_USER = re.compile(r"\b(?:me|us|with me|with us)\b", re.I)
_WHO_THEY_ARE = re.compile(r"^(?:a|an|called|named|\d+|[A-Z]\w*|at|in|from|studying|retired)$")
_IDENTITY = re.compile(r"^(?:i'm|i am|im) (?:a |an )?[\w\-]+$", re.I)  # "I'm a pescatarian"
_ADVERBS = {"just", "recently", "also", "still", "now", "actually", "currently", "finally"}


def life_statements(text: str) -> list[Statement]:
    """The statements about the user's own life in one message ([] for anything else)."""
    message = clean(text)[:2000]
    request = _REQUEST.match(_strip_lead(message)) and not _CALL_ME.search(message)
    if not message or _JOKE.search(message) or request:
        return []
    found: list[Statement] = []
    for sentence in _sentences(message):
        quoted = " ".join(_QUOTED.findall(sentence))
        if sentence.rstrip().endswith("?") or _REPORTED.search(sentence) or _I.search(quoted):
            continue
        correction = bool(_CORRECTION.search(sentence))
        body = _strip_lead(sentence)
        bare = _BARE.match(body) if correction else None
        value = _OLD_VALUE.sub("", bare.group(1) if bare else body).strip(" ,.!")
        value = re.sub(
            r"[\s,]+(?:actually|now|then|instead|sorry)$", "", value, flags=re.I
        )  # "Kiwi, not X"
        if correction and (bare or len(value.split()) <= 3) and value and not _I.search(value):
            found.append(Statement(None, True, _old(sentence), value, sentence))
            continue
        for clause in _CLAUSE.split(body):
            statement = _statement(clause, correction, sentence)
            if statement is not None:
                found.append(statement)
    return found


def _statement(clause: str, correction: bool, sentence: str) -> Statement | None:
    clause = _strip_lead(clause).strip(" ,.!;:-")
    if _CALL_ME.search(clause):  # "(please) call me Sam": the rules' name
        named = extract_facts(clause)
        return Statement(named[0], correction, said=sentence) if named else None
    if not clause or not _I.search(clause) or _QUESTION.match(clause) or _REQUEST.match(clause):
        return None
    if _IRREALIS.search(clause) or _CHATTER.match(clause) or _GENERIC_WE.search(clause):
        return None
    if _LAUGH.search(sentence) and _IDENTITY_CLAIM.match(clause):
        return None  # "I'm a billionaire lol": laughter after who one is marks a joke
    clause = _LAUGH.sub("", clause).strip(" ,.!")
    if not _I_SUBJECT.search(clause) and not _MY_SUBJECT.match(clause):
        return None  # "In my novel, the hero has a cat"
    if not _about_user(clause):
        return None
    old = _old(sentence) if correction else ""
    kept = _OLD_VALUE.sub("", clause).strip(" ,.") if correction else clause
    kept = re.sub(r"\b(?:actually|anymore)\b\s*", "", kept, flags=re.I).strip(" ,.")
    said = _third_person(kept)
    said = clean(said[:1].upper() + said[1:] + ".")[:MAX_FACT_CHARS]
    ruled = extract_facts(kept)
    if len(ruled) == 1 and not ruled[0].key.startswith("my:"):  # "my X is Y": the user's words
        rule = ruled[0]
        own = said if said.lower() != rule.text.lower() else ""
        return Statement(Fact(rule.key, rule.text, own), correction, old, said=sentence)
    content = [w for w in _content(kept) if w not in _EMPTY_VERBS]
    if not content and not _IDENTITY.match(kept):  # "I love it" says nothing to keep
        return None
    slug = re.sub(r"[^a-z0-9]+", " ", said.lower()).strip()[:60]
    return Statement(Fact(f"said:{slug}", said), correction, old, said=sentence)


def _about_user(clause: str) -> bool:
    """False for a statement about another person: someone other than family (only naming
    them counts), or family doing, owning or liking something (only who they are counts)."""
    person = _PERSON.match(clause)
    if person is None:
        other = _OTHER_THAN_USER.search(clause)
        return other is None and not re.match(r"^(?:he|she|they|his|her|their)\b", clause, re.I)
    who = person.group(1).lower()
    after = clause[person.end() :]
    if person.group(0).lower().endswith(("'s", "s'")):  # my sister's cat, my son's birthday
        attribute = after.split()[:1]
        if who in OTHERS:
            return bool(attribute) and attribute[0].lower() == "name"
        return bool(attribute) and attribute[0].lower() in ("name", "birthday", "age", "job")
    rest = re.sub(r"^[\s,]*(?:[A-Z][\w\-]*[\s,]*)*", " ", after)  # "my son Leo, 7,"
    cased = [w.strip(",") for w in rest.split() if w.lower().strip(",") not in _ADVERBS]
    words = [w.lower() for w in cased]
    if _NAMING.match(" ".join(words)) or (
        words[:1] in (["is"], ["'s"]) and cased[1:2] and cased[1][:1].isupper()
    ):
        return True
    if _WITH_USER.search(rest):  # their relation to the user: "my colleague Priya sits next to me"
        return True
    if who in OTHERS or not words:
        return False
    if words[0] in _COPULA or rest.lstrip().startswith(("'s ", "’s ")):
        following = cased[1:2] if words[0] in _COPULA else cased[:1]
        return bool(following) and bool(_WHO_THEY_ARE.match(following[0]))
    return words[0] in _IDENTITY_VERBS


def _old(sentence: str) -> str:
    match = _OLD_VALUE.search(sentence)
    return match.group(1).strip() if match else ""


def _strip_lead(text: str) -> str:
    return _LEAD.sub("", text.strip()).strip()


def _third_person(text: str) -> str:
    text = re.sub(r"\bi (?:don't|do not)\b", "the user does not", text, flags=re.I)
    text = re.sub(r"\bi (?:didn't|did not)\b", "the user did not", text, flags=re.I)
    text = re.sub(r"\bi (?:can't|cannot)\b", "the user cannot", text, flags=re.I)
    text = re.sub(r"\bim\b", "I am", text, flags=re.I)
    text = re.sub(r"\bthe name(?:'s| is)\b", "the user's name is", text, flags=re.I)
    past = r"\bi ((?:just |recently |also |finally )?(?:\w+ed|" + "|".join(_PAST) + r"))\b"
    text = re.sub(past, r"the user \1", text, flags=re.I)
    text = re.sub(r"\bwe're\b|\bwe are\b", "the user and their family are", text, flags=re.I)
    text = re.sub(r"\bwe've\b|\bwe have\b", "the user and their family have", text, flags=re.I)
    text = re.sub(r"\bwe\b", "the user and their family", text, flags=re.I)
    return third_person(text)


def _content(text: str) -> list[str]:
    return [
        word
        for word in re.findall(r"[a-z0-9][a-z0-9'\-]*", text.lower())
        if word not in _FUNCTION_WORDS
    ]


_EMPTY_VERBS = set(
    "love loves like likes hate hates know knows think see agree want need mean guess hope feel "
    "enjoy do get got go going did done make made say tell".split()
)
_FUNCTION_WORDS = set(
    "a an the and or but so to of in on at for with by from it its it's this that these those "
    "i i'm im i've i'd i'll my me mine myself we our us is am are was were be been being have has "
    "had do does did not no very really just also too still that's there here them they".split()
)


def _sentences(text: str) -> list[str]:
    """Sentences, not split after an abbreviation ("St. Mary's", "Dr. Lee")."""
    breaks = r"(?<!\bSt\.)(?<!\bDr\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bMrs\.)(?<!\bMt\.)(?<=[.!?])\s+"
    return [s for s in re.split(breaks + r"|\s*\n\s*", text) if s.strip()]
