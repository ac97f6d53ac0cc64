"""A tool's arguments checked against the message they came from: what the schema says, and
nothing the user did not say (a small model fills gaps with guesses: those are dropped, or
asked for when the tool needs them)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

from dialogs.text import STOPWORDS, stem

FREE_TEXT_CHARS = 60


def content_words(text: str) -> set[str]:
    """The stems of `text`'s words of three letters or more that are not stopwords."""
    words = re.findall(r"[a-z]{3,}", text.lower())
    return {stem(word) for word in words if word not in STOPWORDS}


def candidates(prop: dict[str, Any], text: str, taken: Sequence[str] = ()) -> list[Any]:
    """The values of `prop`'s shape the user's `text` holds: for a pattern, every match (an id
    written "a 10234" read as "A-10234"); for a number, every number in range that is not part
    of a value in `taken` (the digits of an order id are no amount). None found: []."""
    pattern = prop.get("pattern")
    found: list[Any] = []
    if pattern:
        bare = re.compile(pattern.strip("^$"), re.IGNORECASE)
        for form in _id_forms(text):
            for match in bare.finditer(form):
                value = match.group(0)
                value = (
                    value.upper() if value.upper() != value.lower() and "@" not in value else value
                )
                if re.fullmatch(pattern, value) and value not in found:
                    found.append(value)
    elif prop.get("type") in ("integer", "number"):
        low, high = prop.get("minimum", float("-inf")), prop.get("maximum", float("inf"))
        for raw in re.findall(r"(?<![\w.:-])\d+(?:\.\d+)?(?![\w:-])", text):
            number = float(raw) if prop["type"] == "number" else int(float(raw))
            if any(raw in value for value in taken):
                continue
            if low <= number <= high and number not in found:
                found.append(number)
    return found


def argument_schema(schema: dict[str, Any], text: str) -> dict[str, Any]:
    """The tool's input schema as the decoder gets it for `text`: no extra properties, free text
    bounded, and an id, date or number only one the text holds (a required one the text lacks
    is left out: the user is asked for it)."""
    properties = {}
    shaped = [p for p in schema.get("properties", {}).values() if p.get("pattern")]
    taken = [str(v) for p in shaped for v in candidates(p, text)]
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "default")}
        if "anyOf" in prop:  # "number or null": the decoder leaves an optional out instead
            kinds = [p for p in prop.pop("anyOf") if p.get("type") != "null"]
            prop.update(kinds[0] if kinds else {})
        if prop.get("pattern") or prop.get("type") in ("integer", "number"):
            found = candidates(prop, text, () if prop.get("pattern") else taken)
            if not found:
                continue
            prop = {"enum": found}
        elif "enum" in prop:  # a choice the text names (a word of it), else none
            words = set(re.findall(r"[a-z0-9]+", text.lower()))
            named = [c for c in prop["enum"] if str(c).lower() in words]
            if not named:
                continue
            prop = {"enum": named}
        elif prop.get("type") == "string":
            prop["maxLength"] = FREE_TEXT_CHARS
        properties[name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": [n for n in schema.get("required", []) if n in properties],
        "additionalProperties": False,
    }


def _evidenced(value: Any, prop: dict[str, Any], text: str, ignore: set[str]) -> bool:
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
    if prop.get("pattern"):
        squeezed = re.sub(r"[^0-9a-z@.]", "", lowered)
        return re.sub(r"[^0-9a-z@.]", "", value.lower()) in squeezed
    return bool((content_words(value) - ignore) & content_words(text))


def checked_arguments(
    arguments: dict[str, Any], schema: dict[str, Any], text: str, about: str = ""
) -> tuple[dict[str, Any], list[str]]:
    """(the arguments the user's `text` supports, the required ones still missing). Free text
    must share a word with `text` that is not a word of `about` (the tool's name and
    description, which a small model copies when the user gave nothing)."""
    ignore = content_words(about)
    properties = schema.get("properties", {})
    kept: dict[str, Any] = {}
    for name, value in arguments.items():
        prop = properties.get(name)
        if prop is None or not _evidenced(value, prop, text, ignore):
            continue
        if isinstance(value, str) and not prop.get("pattern") and value in kept.values():
            continue  # free text that only repeats another argument (the order id as reason)
        kept[name] = value.strip() if isinstance(value, str) else value
    missing = [name for name in schema.get("required", []) if name not in kept]
    return kept, missing


def valid_arguments(
    arguments: dict[str, Any], schema: dict[str, Any], text: str
) -> tuple[dict[str, Any], list[str]]:
    """(the arguments of a model that calls tools itself that fit the tool's JSON `schema`, the
    required ones still missing). Kept: parameters the schema names whose values validate, and
    of those with a `pattern` (an id, a date, an email) only values the user's `text` holds — a
    capable model may word free text its own way, but an id it invents is never used."""
    properties = schema.get("properties", {})
    known = {name: value for name, value in arguments.items() if name in properties}
    optional = {k: v for k, v in schema.items() if k not in ("required", "additionalProperties")}
    try:
        errors = list(Draft202012Validator(optional).iter_errors(known))
    except (SchemaError, re.error):  # a server's schema that cannot be checked: nothing fits it
        return {}, list(schema.get("required", []))
    invalid = {str(error.absolute_path[0]) for error in errors if error.absolute_path}
    kept: dict[str, Any] = {}
    for name, value in known.items():
        prop = properties[name]
        if name in invalid or (prop.get("pattern") and not _evidenced(value, prop, text, set())):
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
