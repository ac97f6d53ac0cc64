"""Facts found by the model itself, for models capable of a structured extraction prompt.

`ModelFacts(model).extract(text)` asks the model for a JSON list of facts the message states about
its sender and checks every item before it becomes a `Fact`: a known kind, a value of at most 80
characters that appears word for word in the message (so nothing invented is kept), and clean
text. Whatever fails a check is dropped; a reply that is not such a list gives no facts. Used
with BOTLOOM_MEMORY_EXTRACTION=model, after the reply is sent, besides the rules (which run
always: the embedded default is too small for this prompt).
"""

from __future__ import annotations

import json
import logging
import re

from dialogs.memory.user_facts import Fact, clean, third_person
from models import ChatMessage, ChatModel, GenerationParams, ModelError, complete

logger = logging.getLogger(__name__)

EXTRACTION_PROMPT = (
    "You extract facts that a chat user states about themselves. Reply with JSON only: a list of "
    'objects {"kind": K, "value": V}, where K is one of name, home, employer, role, manager, '
    "allergy, likes, other, and V is copied word for word from the message. Statements about "
    "other people, questions and wishes are not facts. Reply [] when there are none."
)
TEMPLATES = {
    "name": ("name", "The user's name is {v}."),
    "home": ("home", "The user lives in {v}."),
    "employer": ("employer", "The user works at {v}."),
    "role": ("role", "The user works as {v}."),
    "manager": ("manager", "The user's manager is {v}."),
    "allergy": ("allergy:{k}", "The user is allergic to {v}."),
    "likes": ("likes:{k}", "The user likes {v}."),
    "other": ("note:{k}", "{V}."),
}
PARAMS = GenerationParams(max_new_tokens=160, temperature=0.0, top_p=1.0, repetition_penalty=1.0)


class ModelFacts:
    """Structured extraction by `model`; never raises (a failed model call gives no facts)."""

    def __init__(self, model: ChatModel) -> None:
        self._model = model

    async def extract(self, text: str) -> list[Fact]:
        message = clean(text)[:2000]
        if not message:
            return []
        prompt = [ChatMessage("system", EXTRACTION_PROMPT), ChatMessage("user", message)]
        try:
            reply = await complete(self._model, prompt, PARAMS)
        except ModelError as error:
            logger.info("fact extraction skipped: %s", type(error).__name__)
            return []
        return checked(reply, message)


def checked(reply: str, message: str) -> list[Fact]:
    """The facts of a model's `reply` that pass every check against the `message`."""
    match = re.search(r"\[.*\]", reply, re.DOTALL)
    try:
        items = json.loads(match.group(0)) if match else []
    except ValueError:
        return []
    if not isinstance(items, list):
        return []
    facts: dict[str, Fact] = {}
    for item in items[:10]:
        if not isinstance(item, dict):
            continue
        kind, value = item.get("kind"), item.get("value")
        if kind not in TEMPLATES or not isinstance(value, str):
            continue
        value = clean(value).strip(" .")
        if not value or len(value) > 80 or value.lower() not in message.lower():
            continue  # invented, or not the user's words
        key, template = TEMPLATES[kind]
        third = third_person(value)
        slug = re.sub(r"[^a-z0-9]+", " ", value.lower()).strip()
        text = template.format(v=third, V=third[:1].upper() + third[1:])
        facts[key.format(k=slug)] = Fact(key.format(k=slug), text)
    return list(facts.values())
