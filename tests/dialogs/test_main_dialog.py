"""The router, the commands, the feedback flow and interruptions, through DialogTestClient."""

from __future__ import annotations

from dialogs.chat_dialog import NOT_TEXT
from dialogs.main_dialog import CANCELLED_TEXT, HELP_TEXT, NOTHING_TO_CANCEL, RESET_TEXT
from tests.dialogs.conftest import DialogHarness


async def test_plain_text_goes_to_the_model(harness: DialogHarness) -> None:
    assert await harness.say("hello there") == ["fake: hello there"]


async def test_help_and_unknown_command(harness: DialogHarness) -> None:
    assert await harness.say("/help") == [HELP_TEXT]
    assert await harness.say("HELP") == [HELP_TEXT]
    assert await harness.say("/nonsense now") == ["I don't know the command /nonsense. Try /help."]
    assert harness.model.prompts == []


async def test_reset_forgets_history(harness: DialogHarness) -> None:
    await harness.say("one")
    await harness.say("two")
    assert len(harness.model.prompts[-1]) == 4  # system, one, fake: one, two
    assert await harness.say("/reset") == [RESET_TEXT]
    await harness.say("three")
    assert [m.content for m in harness.model.prompts[-1]] == ["You are a test.", "three"]


async def test_feedback_flow_saves_to_user_state(harness: DialogHarness) -> None:
    assert (await harness.say("/feedback"))[0].startswith("How were my answers?")
    assert await harness.say("Poor") == ["Anything you'd like to add?"]
    confirm = await harness.say("Too short")
    assert confirm[0].startswith("Rating: Poor. Comment: Too short")
    assert await harness.say("yes") == ["Thank you! Your feedback is saved."]
    stored = await harness.storage.read(["emulator/users/User1"])
    entries = stored["emulator/users/User1"]["feedback"]
    assert [(e["rating"], e["comment"]) for e in entries] == [("Poor", "Too short")]
    assert harness.model.prompts == [], "no flow answer reached the model"


async def test_feedback_not_saved_when_declined(harness: DialogHarness) -> None:
    for text in ("/feedback", "OK", "meh"):
        await harness.say(text)
    assert await harness.say("no") == ["Okay, I didn't save it."]
    stored = await harness.storage.read(["emulator/users/User1"])
    assert stored.get("emulator/users/User1", {}).get("feedback", []) == []


async def test_invalid_rating_reprompts(harness: DialogHarness) -> None:
    await harness.say("/feedback")
    reply = await harness.say("purple")
    assert reply == ["Please pick one: Great, OK, Poor."]
    assert await harness.say("Great") == ["Anything you'd like to add?"]


async def test_help_interrupts_a_flow_and_keeps_it(harness: DialogHarness) -> None:
    await harness.say("/feedback")
    replies = await harness.say("help")
    assert replies[0] == HELP_TEXT
    assert replies[1].startswith("How were my answers?"), "the prompt is asked again"
    assert await harness.say("Great") == ["Anything you'd like to add?"]


async def test_cancel_interrupts_a_flow(harness: DialogHarness) -> None:
    await harness.say("/feedback")
    await harness.say("Great")
    assert await harness.say("cancel") == [CANCELLED_TEXT]
    assert await harness.say("back to chat") == ["fake: back to chat"]
    assert await harness.say("cancel") == [NOTHING_TO_CANCEL]


async def test_card_submit_without_text_is_safe(harness: DialogHarness) -> None:
    assert await harness.say(None, value={"choice": "x"}) == [NOT_TEXT]
    await harness.say("/feedback")
    replies = await harness.say(None, value={"rating": "Great"})
    assert replies == ["Please pick one: Great, OK, Poor."]
    assert await harness.say("cancel") == [CANCELLED_TEXT]
