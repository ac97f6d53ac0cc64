"""Prompt starters (BOTLOOM_PROMPT_STARTERS): suggestions shown before the user's first message.

The setting holds ``title|text`` pairs separated by ``;`` (or new lines), for example
``Explain|Explain how transformers work;Write|Write a haiku about the sea``; a pair without
``|`` uses its text as its title. They go into the Teams app manifest (deployment/azure/teams:
personal scope, at most 10) and, as suggested actions, into the welcome message on channels
that show them (Teams shows the first 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from botbuilder.core import MessageFactory
from botbuilder.schema import ActionTypes, Activity, CardAction

from bot.settings import SettingsError

MAX_STARTERS = 10  # deployment/azure/teams/package.py allows as many
MAX_TEXT = 128  # a Teams command title (the prompt put in the compose box)
TEAMS_SHOWN = 3


@dataclass(frozen=True)
class PromptStarter:
    title: str  # the button's label
    text: str  # what clicking it sends


def parse_prompt_starters(raw: str) -> tuple[PromptStarter, ...]:
    """The starters in BOTLOOM_PROMPT_STARTERS; SettingsError when there are too many or one is
    too long."""
    starters = []
    for item in raw.replace("\n", ";").split(";"):
        if not item.strip():
            continue
        title, _, text = item.partition("|")
        title, text = title.strip(), (text.strip() or title.strip())
        if not title or len(text) > MAX_TEXT or len(title) > MAX_TEXT:
            raise SettingsError(
                f"BOTLOOM_PROMPT_STARTERS: {item.strip()[:40]!r} needs a title and a text of at "
                f"most {MAX_TEXT} characters (title|text;title|text)"
            )
        starters.append(PromptStarter(title, text))
    if len(starters) > MAX_STARTERS:
        raise SettingsError(f"BOTLOOM_PROMPT_STARTERS holds at most {MAX_STARTERS} starters")
    return tuple(starters)


def welcome_with_starters(
    text: str, starters: tuple[PromptStarter, ...], channel_id: str | None
) -> Activity:
    """The welcome message, with the starters as suggested actions (imBack: a click sends the
    starter's text as the user's message)."""
    if not starters:
        return MessageFactory.text(text)
    shown = starters[:TEAMS_SHOWN] if channel_id == "msteams" else starters
    actions = [CardAction(type=ActionTypes.im_back, title=s.title, value=s.text) for s in shown]
    return MessageFactory.suggested_actions(actions, text)
