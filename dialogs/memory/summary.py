"""The rolling summary of a conversation's older turns (kept by ConversationMemory).

When the history no longer fits the prompt's budget, its oldest turns are folded into the summary
after the reply is sent (`ChatDialog`), and the prompt is then system +
user memory + summary + the turns that were not folded. Folding goes down to half the budget at
once, so the prompt's beginning stays the same for the next turns and the engine keeps reusing its
KV cache until the window fills again.

The summary is extractive (it works on every model, the embedded default included): each folded
message of the user that states something (not a question) becomes one line in the third person;
the assistant's replies are not kept (a small model's inventions should not become "facts"). It is
bounded by MAX_SUMMARY_CHARS: the first PINNED lines (how the conversation began) stay, then the
newest lines that fit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dialogs.memory.user_facts import clean, third_person
from models import ChatMessage

MAX_SUMMARY_CHARS = 1200
MAX_LINE_CHARS = 200
PINNED = 4
FOLD_ABOVE = 0.75  # fold when system + history exceed this share of the prompt budget ...
FOLD_TO = 0.5  # ... down to this share
SUMMARY_SHARE = 0.2  # the summary's block takes at most this share of the budget
_QUESTION = re.compile(
    r"^\s*(?:what|who|where|when|why|how|which|whose|do|does|did|is|are|can|could|would|will|"
    r"should|tell me|explain|write|give|show|list)\b",
    re.IGNORECASE,
)


def summary_line(message: ChatMessage) -> str | None:
    """One line for a folded message: the user's statement in the third person, or None."""
    if message.role != "user":
        return None
    text = clean(message.content)
    if not text or text.endswith("?") or _QUESTION.match(text) or text.startswith("/"):
        return None
    if len(text) > MAX_LINE_CHARS:
        text = text[:MAX_LINE_CHARS].rsplit(" ", 1)[0] + "…"
    text = third_person(text)
    if not text.lower().startswith("the user"):
        text = "The user said: " + text
    else:
        text = text[:1].upper() + text[1:]
    return text if text[-1] in ".!…" else text + "."


def bounded(lines: list[str]) -> list[str]:
    """The first PINNED lines, then the newest that fit MAX_SUMMARY_CHARS."""
    unique = list(dict.fromkeys(lines))
    pinned, rest = unique[:PINNED], unique[PINNED:]
    room = MAX_SUMMARY_CHARS - sum(len(line) + 1 for line in pinned)
    kept: list[str] = []
    for line in reversed(rest):
        if len(line) + 1 > room:
            break
        kept.append(line)
        room -= len(line) + 1
    return pinned + kept[::-1]


def summary_block(lines: Sequence[str]) -> str:
    """The prompt's paragraph on the conversation's older turns ("" when there are none)."""
    if not lines:
        return ""
    return "Earlier in this conversation:\n" + "\n".join(f"- {line}" for line in lines)
