"""The language model: one ChatModel interface and its implementations."""

from models.api import (
    ChatMessage,
    ChatModel,
    GenerationParams,
    ModelError,
    ModelOverloaded,
    ModelShuttingDown,
    ModelTimeout,
    ModelUnavailable,
    PromptTooLong,
    complete,
)

__all__ = [
    "ChatMessage",
    "ChatModel",
    "GenerationParams",
    "ModelError",
    "ModelOverloaded",
    "ModelShuttingDown",
    "ModelTimeout",
    "ModelUnavailable",
    "PromptTooLong",
    "complete",
]
