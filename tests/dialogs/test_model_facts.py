"""Facts from the model's structured extraction, checked against the message before kept."""

from __future__ import annotations

from collections.abc import Sequence

from dialogs.memory.model_facts import EXTRACTION_PROMPT, checked
from models import ChatMessage
from models.fake import FakeChatModel
from tests.dialogs.memory_harness import MemoryBot


def test_only_known_kinds_with_the_users_own_words_are_kept() -> None:
    message = "We finally settled in Porto, and Rosa Lima leads my team."
    reply = (
        'Sure: [{"kind": "home", "value": "Porto"}, {"kind": "manager", "value": "Rosa Lima"},'
        ' {"kind": "name", "value": "Priya"}, {"kind": "password", "value": "Porto"},'
        ' {"kind": "role", "value": "<b>team</b>"}, "junk"]'
    )
    facts = {f.key: f.text for f in checked(reply, message)}
    assert facts == {
        "home": "The user lives in Porto.",
        "manager": "The user's manager is Rosa Lima.",
        "role": "The user works as team.",
    }, "Priya is not in the message; 'password' is no kind; markup is removed"
    assert checked("I cannot do that.", message) == []
    assert checked('[{"kind": "home", "value": "Porto"', message) == []


async def test_the_dialog_keeps_what_the_model_extracts_after_the_reply() -> None:
    def reply(prompt: Sequence[ChatMessage]) -> str:
        if prompt[0].content == EXTRACTION_PROMPT:
            return '[{"kind": "home", "value": "Porto"}]'
        return "Nice!"

    model = FakeChatModel(reply=reply)
    bot = MemoryBot(model, model_facts=True)
    assert await bot.say("We finally settled in Porto.") == ["Nice!"]
    assert model.prompts[-1][0].content == EXTRACTION_PROMPT, "extraction came after the reply"
    assert "- You live in Porto." in (await bot.say("/memory"))[0]
