"""What a model failure means for the user (a short apology) and for the turn log (a name)."""

from __future__ import annotations

from models import (
    ModelError,
    ModelOverloaded,
    ModelShuttingDown,
    ModelTimeout,
    ModelUnavailable,
    PromptTooLong,
)

OUTCOME_KEY = "botloom.outcome"  # turn_state key: how the turn ended, for the turn log
TOO_LONG = "That message is too long for me. Could you shorten it?"


def outcome_of(error: ModelError) -> str:
    """The turn log's name for a model failure."""
    if isinstance(error, ModelOverloaded):
        return "overloaded"
    if isinstance(error, ModelTimeout):
        return "timeout"
    if isinstance(error, ModelShuttingDown):
        return "shutdown"
    if isinstance(error, ModelUnavailable):
        return "unavailable"
    return "model_error"


def apology_for(error: ModelError) -> str:
    """A short message for the user that says what went wrong, without internals."""
    if isinstance(error, PromptTooLong):  # a model server with a smaller window than configured
        return TOO_LONG
    if isinstance(error, ModelOverloaded):
        return f"I'm busy right now. Please try again in {max(1, round(error.retry_after))} s."
    if isinstance(error, ModelTimeout):
        return "Sorry, that took me too long. Please try again."
    if isinstance(error, ModelShuttingDown):
        return "Sorry, I'm restarting right now. Please send that again in a minute."
    if isinstance(error, ModelUnavailable):
        return "Sorry, my language model isn't available right now. Please try again shortly."
    return "Sorry, something went wrong while I was answering. Please try again."
