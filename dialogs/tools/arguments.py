"""A tool's arguments checked against the message they came from: what the schema says, and
nothing the user did not say (a small model fills gaps with guesses: those are dropped, or
asked for when the tool needs them)."""

from __future__ import annotations

import re
from typing import Any

from dialogs.text import STOPWORDS, stem

FREE_TEXT_CHARS = 120


def content_words(text: str) -> set[str]:
    """The stems of `text`'s words of three letters or more that are not stopwords."""
    words = re.findall(r"[a-z]{3,}", text.lower())
    return {stem(word) for word in words if word not in STOPWORDS}


def argument_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The tool's input schema as the decoder gets it: no extra properties, free text bounded."""
    properties = {}
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "default")}
        if "anyOf" in prop:  # "number or null": the decoder leaves an optional out instead
            kinds = [p for p in prop.pop("anyOf") if p.get("type") != "null"]
            prop.update(kinds[0] if kinds else {})
        if prop.get("type") == "string" and "enum" not in prop and "pattern" not in prop:
            prop["maxLength"] = FREE_TEXT_CHARS
        properties[name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": list(schema.get("required", [])),
        "additionalProperties": False,
    }


def _evidenced(value: Any, prop: dict[str, Any], text: str) -> bool:
    """Whether the user's text holds `value`: its digits and letters for ids, numbers and
    dates; a content word for free text; the value itself for a choice."""
    lowered = text.lower()
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        number = f"{value:g}"
        return re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", lowered) is not None
    if not isinstance(value, str) or not value.strip():
        return False
    if "enum" in prop:
        return value.lower() in lowered
    if any(ch.isdigit() for ch in value):
        squeezed = re.sub(r"[^0-9a-z]", "", lowered)
        return re.sub(r"[^0-9a-z]", "", value.lower()) in squeezed
    words = set(content_words(value))
    if "@" in value:
        return value.lower() in lowered
    return bool(words) and bool(words & set(content_words(text)))


def checked_arguments(
    arguments: dict[str, Any], schema: dict[str, Any], text: str
) -> tuple[dict[str, Any], list[str]]:
    """(the arguments the user's `text` supports, the required ones still missing)."""
    properties = schema.get("properties", {})
    kept: dict[str, Any] = {}
    for name, value in arguments.items():
        prop = properties.get(name)
        if prop is None or not _evidenced(value, prop, text):
            continue
        kept[name] = value.strip() if isinstance(value, str) else value
    missing = [name for name in schema.get("required", []) if name not in kept]
    return kept, missing


def _id_forms(text: str) -> list[str]:
    """`text`, and with letters and digits of ids joined by a dash ("a 10234" → "a-10234")."""
    return [text, re.sub(r"\b([A-Za-z]{1,4})[\s-]?(?=\d)", r"\1-", text)]


def evidence(schema: dict[str, Any], text: str) -> int:
    """How many of the tool's parameters with a pattern or a set of choices have a value of
    that shape in `text` (an order id, a date, one of the choices)."""
    found = 0
    for prop in schema.get("properties", {}).values():
        pattern = prop.get("pattern")
        if pattern:
            bare = re.compile(pattern.strip("^$"), re.IGNORECASE)
            found += any(bare.search(form) for form in _id_forms(text))
        elif "enum" in prop:
            words = set(re.findall(r"[a-z]+", text.lower()))
            found += any(str(choice).lower() in words for choice in prop["enum"])
    return found
