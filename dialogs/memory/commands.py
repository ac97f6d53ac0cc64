"""/memory, /forget and /remember: the user sees and controls what is kept about them.

They work anywhere, also in the middle of a flow such as /feedback (which then asks its question
again). With memory turned off (BOTLOOM_MEMORY=false) they say so and keep nothing.
"""

from __future__ import annotations

from botbuilder.core import TurnContext

from dialogs.memory.user_facts import clean, remembered, second_person
from dialogs.memory.user_store import MemoryConflict, UserMemory

MEMORY_COMMANDS = ("/memory", "/forget", "/remember")
MEMORY_OFF = "I don't keep anything about you: memory is turned off for this bot."
NOTHING_KEPT = "I don't keep anything about you yet. Tell me about yourself, or use /remember."
FORGOT_ALL = "Done: I've forgotten everything I kept about you."
REMEMBER_WHAT = "What should I remember? For example: /remember my flight is on Friday"
NOT_SAVED = "Sorry, I couldn't save that just now. Please try again."
NO_SENDER = "I can't tell who you are in this conversation, so I keep nothing."


class MemoryCommands:
    """Runs the memory commands for the turn's sender; `memory` None means memory is off."""

    def __init__(self, memory: UserMemory | None) -> None:
        self._memory = memory

    async def run(self, turn_context: TurnContext, command: str) -> bool:
        """Answer `command` if it is a memory command (True), else do nothing (False)."""
        if command not in MEMORY_COMMANDS:
            return False
        if self._memory is None:
            await turn_context.send_activity(MEMORY_OFF)
            return True
        argument = _argument(turn_context.activity.text or "")
        try:
            reply = await self._answer(turn_context, command, argument)
        except MemoryConflict:
            reply = NOT_SAVED
        await turn_context.send_activity(reply)
        return True

    async def _answer(self, turn_context: TurnContext, command: str, argument: str) -> str:
        assert self._memory is not None
        if turn_context.activity.from_property is None:
            return NO_SENDER
        if command == "/memory":
            facts = await self._memory.facts(turn_context)
            if not facts:
                return NOTHING_KEPT
            lines = "\n".join(f"- {second_person(item['text'])}" for item in facts)
            return (
                f"Here is what I keep about you:\n\n{lines}\n\n"
                "/forget clears it all; /forget and a word removes what mentions that word."
            )
        if command == "/forget":
            if not argument:
                await self._memory.forget(turn_context, lambda item: True)
                return FORGOT_ALL
            words = clean(argument).lower()
            removed = await self._memory.forget(
                turn_context, lambda item: words in item["text"].lower()
            )
            if not removed:
                return f"I don't keep anything about “{words[:80]}”. /memory shows what I keep."
            things = "thing" if removed == 1 else "things"
            return f"Done: I've forgotten {removed} {things} about “{words[:80]}”."
        fact = remembered(argument)
        if fact is None:
            return REMEMBER_WHAT
        await self._memory.add(turn_context, [fact])
        return remember_reply(fact.text)


def remember_reply(*texts: str) -> str:
    """The confirmation of kept facts, said to the user."""
    said = [second_person(text) for text in texts]
    return "Got it, I'll remember: " + " ".join(s[:1].upper() + s[1:] for s in said)


def _argument(text: str) -> str:
    """What follows the command word."""
    parts = text.strip().split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""
