"""Feedback on the bot's replies: Teams' thumbs up / down, reactions, /feedback ratings."""

from bot.feedback.store import FeedbackStore, export_feedback

__all__ = ["FeedbackStore", "export_feedback"]
