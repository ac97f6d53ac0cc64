"""The model's prompt: the system prompt and its context blocks, then as much recent history as
the token budget allows, then the user's message."""

from __future__ import annotations

from collections.abc import Sequence

from models import ChatMessage, ChatModel, PromptTooLong

__all__ = ["PromptTooLong", "build_prompt", "system_message"]  # PromptTooLong: raised when even
# the system prompt and the newest message alone exceed the token budget, as models raise it when
# a prompt exceeds their window


def system_message(system_prompt: str, context: Sequence[str] = ()) -> list[ChatMessage]:
    """[system] with the non-empty context blocks (what is known about the user, the summary of
    older turns) as paragraphs after the system prompt; [] when everything is empty.

    They go in the system message, the start of the prompt, because they change rarely (a new
    fact, a new fold): the engine's KV cache of the conversation's earlier turns stays reusable
    between those changes, which it would not if they sat before the newest message."""
    text = "\n\n".join(part for part in (system_prompt, *context) if part)
    return [ChatMessage("system", text)] if text else []


def build_prompt(
    model: ChatModel,
    system_prompt: str,
    history: Sequence[ChatMessage],
    user_text: str,
    *,
    budget_tokens: int,
    context: Sequence[str] = (),
) -> list[ChatMessage]:
    """Return [system, newest history that fits..., user], counted with the model's tokenizer.

    `budget_tokens` is what the prompt may use (the context window minus the reply's reserve);
    `context` blocks join the system message (see `system_message`), least important first:
    when they leave no room for the message, the first blocks are left out. The oldest messages
    are dropped first; a dropped window never starts with an assistant turn.
    """
    user = [ChatMessage("user", user_text)]
    blocks = list(context)
    system = system_message(system_prompt, blocks)
    while blocks and model.count_tokens([*system, *user]) > budget_tokens:
        blocks.pop(0)
        system = system_message(system_prompt, blocks)
    if model.count_tokens([*system, *user]) > budget_tokens:
        raise PromptTooLong(f"the message needs more than {budget_tokens} tokens")
    start = first_that_fits(model, system, history, user, budget_tokens)
    return [*system, *history[start:], *user]


def first_that_fits(
    model: ChatModel,
    system: Sequence[ChatMessage],
    history: Sequence[ChatMessage],
    user: Sequence[ChatMessage],
    budget_tokens: int,
) -> int:
    """The index of the oldest history message the prompt can start with (len(history) when
    none fits); the window never starts with an assistant turn."""

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
    return start
