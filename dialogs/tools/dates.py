"""Dates, times and durations in a message written out in the forms tools take (YYYY-MM-DD,
HH:MM 24 h, N minutes), by Microsoft's Recognizers-Text (which botbuilder's prompts use), so a
small model copies them instead of working out "Thursday" or "3pm" itself."""

from __future__ import annotations

from datetime import date, datetime

from recognizers_date_time import recognize_datetime
from recognizers_text import Culture


def _pick(values: list[dict], today: date) -> dict | None:
    """The first reading on or after `today` (a weekday alone reads as last week and next)."""
    for value in values:
        text = value.get("value") or value.get("start") or ""
        if text[:10] >= today.isoformat() or value.get("type") in ("time", "duration"):
            return value
    return values[0] if values else None


def _written(value: dict) -> str | None:
    kind = value.get("type")
    text = value.get("value") or ""
    if kind == "date" and text:
        return text[:10]
    if kind == "datetime" and text:
        return f"{text[:10]} at {text[11:16]}"
    if kind == "time" and text:
        return f"at {text[:5]}"
    if kind == "duration" and text:
        return f"{int(float(text)) // 60} minutes"
    timex = value.get("timex", "")
    if kind == "timerange" and timex.startswith("T") and len(timex) >= 6:
        return f"at {timex[1:6]}"
    if kind == "datetimerange" and value.get("start"):
        return f"{value['start'][:10]} at {value['start'][11:16]}"
    return None


def normalise_dates(text: str, today: date) -> str:
    """`text` with each date, time and duration written out; unchanged where none is found."""
    reference = datetime(today.year, today.month, today.day, 8, 0)
    try:
        found = recognize_datetime(text, Culture.English, reference=reference)
    except Exception:  # the recognizer is best effort: the text as it is
        return text
    pieces: list[str] = []
    end = 0
    for result in sorted(found, key=lambda r: r.start):
        value = _pick(list(result.resolution.get("values", [])), today)
        written = _written(value) if value else None
        if written is None or result.start < end:
            continue
        pieces += [text[end : result.start], written]
        end = result.end + 1
    return "".join(pieces) + text[end:]
