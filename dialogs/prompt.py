"""The model's prompt: the system prompt plus as much recent history as the token budget allows."""

from __future__ import annotations

from collections.abc import Sequence

from models import ChatMessage, ChatModel, PromptTooLong

__all__ = ["PromptTooLong", "build_prompt"]  # raised when even the system prompt and the newest
# message alone exceed the token budget, as models raise it when a prompt exceeds their window


def build_prompt(
    model: ChatModel,
    system_prompt: str,
    history: Sequence[ChatMessage],
    user_text: str,
    *,
    budget_tokens: int,
) -> list[ChatMessage]:
    """Return [system, newest history that fits..., user], counted with the model's tokenizer.

    `budget_tokens` is what the prompt may use (the context window minus the reply's reserve).
    The oldest messages are dropped first; a dropped window never starts with an assistant turn.
    """
    system = [ChatMessage("system", system_prompt)] if system_prompt else []
    user = [ChatMessage("user", user_text)]
    if model.count_tokens([*system, *user]) > budget_tokens:
        raise PromptTooLong(f"the message needs more than {budget_tokens} tokens")

    def fits(start: int) -> bool:
        return model.count_tokens([*system, *history[start:], *user]) <= budget_tokens

    # The prompt only shrinks as `start` grows, so binary-search the smallest start that fits.
    low, high = 0, len(history)
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    start = low
    while start < len(history) and history[start].role == "assistant":
        start += 1
    return [*system, *history[start:], *user]
