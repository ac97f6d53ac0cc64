"""What the chat dialog's answer needs besides its collaborators."""

from __future__ import annotations

from dataclasses import dataclass, field

from dialogs.answer.reply_ending import DEFAULT_GRACE_TOKENS
from dialogs.knowledge.passages import KnowledgeOptions
from models import ChatModel, GenerationParams


@dataclass(frozen=True)
class ChatOptions:
    """The persona, the prompt's token budget, the generation parameters, how passages from the
    knowledge index are used, and the tokens past max_new_tokens a reply may use to end its
    sentence (dialogs/answer/reply_ending.py). How replies stream and look is the channel
    layer's (bot/channels/replies.py)."""

    system_prompt: str
    context_tokens: int = 2048
    params: GenerationParams = field(default_factory=GenerationParams)
    knowledge: KnowledgeOptions = field(default_factory=KnowledgeOptions)
    grace_tokens: int = DEFAULT_GRACE_TOKENS

    @property
    def grace(self) -> int:
        """The grace tokens, at most a quarter of the cap (small windows keep their prompt)."""
        return min(self.grace_tokens, self.params.max_new_tokens // 4)

    def prompt_budget(self, model: ChatModel) -> int:
        """The tokens a prompt may use: the context (at most the model's window) less the reply."""
        budget = min(self.context_tokens, model.context_window)
        return budget - (self.params.max_new_tokens + self.grace)
