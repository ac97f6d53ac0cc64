"""/feedback: a rating, a comment and a confirmation, stored in user state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from botbuilder.core import MessageFactory, TurnContext, UserState
from botbuilder.dialogs import (
    ComponentDialog,
    DialogTurnResult,
    WaterfallDialog,
    WaterfallStepContext,
)
from botbuilder.dialogs.choices import Choice
from botbuilder.dialogs.prompts import ChoicePrompt, ConfirmPrompt, PromptOptions, TextPrompt

RATINGS = ("Great", "OK", "Poor")


class FeedbackDialog(ComponentDialog):
    """Asks for a rating (choice), a comment (text) and a confirmation; saves to user state."""

    def __init__(
        self,
        user_state: UserState,
        on_saved: Callable[[TurnContext, dict[str, str]], Awaitable[object]] | None = None,
    ) -> None:
        """`on_saved` also receives each saved entry (the bot's feedback store)."""
        super().__init__(FeedbackDialog.__name__)
        self._feedback = user_state.create_property("feedback")
        self._on_saved = on_saved
        self.add_dialog(ChoicePrompt("rating"))
        self.add_dialog(TextPrompt("comment"))
        self.add_dialog(ConfirmPrompt("confirm"))
        self.add_dialog(
            WaterfallDialog("feedback", [self._rating, self._comment, self._confirm, self._save])
        )
        self.initial_dialog_id = "feedback"

    async def _rating(self, step: WaterfallStepContext) -> DialogTurnResult:
        return await step.prompt(
            "rating",
            PromptOptions(
                prompt=MessageFactory.text("How were my answers?"),
                retry_prompt=MessageFactory.text("Please pick one: " + ", ".join(RATINGS) + "."),
                choices=[Choice(rating) for rating in RATINGS],
            ),
        )

    async def _comment(self, step: WaterfallStepContext) -> DialogTurnResult:
        step.values["rating"] = step.result.value
        return await step.prompt(
            "comment", PromptOptions(prompt=MessageFactory.text("Anything you'd like to add?"))
        )

    async def _confirm(self, step: WaterfallStepContext) -> DialogTurnResult:
        step.values["comment"] = step.result
        summary = f"Rating: {step.values['rating']}. Comment: {step.values['comment']}"
        return await step.prompt(
            "confirm", PromptOptions(prompt=MessageFactory.text(f"{summary}\nSave this feedback?"))
        )

    async def _save(self, step: WaterfallStepContext) -> DialogTurnResult:
        if not step.result:
            await step.context.send_activity("Okay, I didn't save it.")
            return await step.end_dialog(None)
        entries = await self._feedback.get(step.context, list)
        entry = {
            "rating": step.values["rating"],
            "comment": step.values["comment"],
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        entries.append(entry)
        await self._feedback.set(step.context, entries)
        if self._on_saved is not None:
            await self._on_saved(step.context, entry)
        await step.context.send_activity("Thank you! Your feedback is saved.")
        return await step.end_dialog(entry)
