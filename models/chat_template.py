"""Chat messages to prompt token ids, with the tokenizer's own chat template.

Control tokens typed by a user (or found in any message) stay text: ``<|im_end|><|im_start|>system``
in a message would otherwise become the template's real markers and forge a turn of its own.
This does not rely on a tokenizer option (newer transformers have one, 5.17 has not), so every
version pyproject.toml allows behaves the same: each control-token string in a message is swapped
for a private-use marker before templating, and the rendered prompt is encoded piece by piece,
the marked strings as plain text (the tokenizer's model without its added tokens).
Messages without control-token strings are encoded exactly as ``apply_chat_template`` does.

The template keeps its own copy of the tokenizer and one lock around it: it is called from
several threads (turns counting tokens off the event loop), while the generation thread decodes
with the original.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Sequence
from typing import Any

from jinja2 import TemplateError
from transformers import PreTrainedTokenizerBase

from models.api import ChatMessage, ModelError

# A tool no template writes unless it renders the tools it is given: how `accepts_tools` tells.
_PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "botloom_probe_tool",
        "description": "A probe.",
        "parameters": {"type": "object", "properties": {}},
    },
}

# Unicode private-use characters (plane 15) around the index of a marked control token.
_MARK_START, _MARK_END = "\U000f0000", "\U000f0001"
_MARKED = re.compile(f"{_MARK_START}(\\d+){_MARK_END}")


def control_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[str, ...]:
    """The strings that must not reach the tokenizer as markup: its special tokens and the added
    tokens its chat template writes (whitespace tokens aside), longest first."""
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    found = {str(t) for t in getattr(tokenizer, "all_special_tokens", []) or []}
    for token in getattr(tokenizer, "added_tokens_decoder", {}).values():
        content = str(getattr(token, "content", token))
        if getattr(token, "special", False) or (content in template and not content.isspace()):
            found.add(content)
    return tuple(sorted((t for t in found if t), key=len, reverse=True))


class ChatTemplate:
    """Renders chat messages into prompt token ids with the tokenizer's own chat template."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, name: str) -> None:
        self.tokenizer = copy.deepcopy(tokenizer)
        self._name = name
        self._lock = threading.Lock()
        controls = control_tokens(tokenizer)
        self._controls = re.compile("|".join(map(re.escape, controls))) if controls else None
        self._newline_ids: list[int] = []
        self._accepts_tools: bool | None = None

    def accepts_tools(self) -> bool:
        """Whether the template writes the `tools` it is given into the prompt (Hermes/Qwen,
        Llama 3.1+, Mistral templates do; plain ChatML ones ignore them). Rendered once with a
        probe tool; thread-safe."""
        with self._lock:
            if self._accepts_tools is None:
                try:
                    rendered = str(
                        self.tokenizer.apply_chat_template(
                            [{"role": "user", "content": "hi"}],
                            tools=[_PROBE_TOOL],
                            add_generation_prompt=True,
                            tokenize=False,
                        )
                    )
                except (TemplateError, ValueError, TypeError):
                    rendered = ""
                self._accepts_tools = "botloom_probe_tool" in rendered
            return self._accepts_tools

    def encode(
        self, messages: Sequence[ChatMessage], tools: Sequence[dict[str, Any]] | None = None
    ) -> list[int]:
        """The prompt ids, ending with the assistant's generation prompt; ModelError if the
        template rejects the messages (some templates reject roles or their order). `tools`
        (in the OpenAI form, models/tool_calls.py) are passed to the template as its `tools`.
        Thread-safe."""
        marked: list[str] = []

        def mark(match: re.Match[str]) -> str:
            marked.append(match.group(0))
            return f"{_MARK_START}{len(marked) - 1}{_MARK_END}"

        conversation = []
        for message in messages:
            content = message.content.replace(_MARK_START, "").replace(_MARK_END, "")
            if self._controls is not None:
                content = self._controls.sub(mark, content)
            conversation.append({"role": message.role, "content": content})
        with self._lock:
            try:
                if not marked:
                    return list(self._apply(conversation, tools, tokenize=True))
                rendered = str(self._apply(conversation, tools, tokenize=False))
            except (TemplateError, ValueError) as error:
                raise ModelError(
                    f"the chat template of {self._name} rejected the messages: {error}"
                ) from error
            return self._encode_marked(rendered, marked)

    def _apply(
        self,
        conversation: list[dict[str, str]],
        tools: Sequence[dict[str, Any]] | None,
        *,
        tokenize: bool,
    ) -> Any:
        return self.tokenizer.apply_chat_template(
            conversation,
            tools=list(tools) if tools else None,
            add_generation_prompt=True,
            tokenize=tokenize,
            return_dict=False,
        )

    def _encode_marked(self, rendered: str, marked: list[str]) -> list[int]:
        """[text, marker, text, marker, ..., text]: the text as usual, the markers as text."""
        pieces = _MARKED.split(rendered)
        ids = list(self.tokenizer.encode(pieces[0], add_special_tokens=False))
        for index, piece in enumerate(pieces[1:], start=1):
            as_text = index % 2 == 1
            text = marked[int(piece)] if as_text else piece
            if text:
                ids += self._encode_piece(text, as_text=as_text)
        return ids

    def _encode_piece(self, text: str, *, as_text: bool) -> list[int]:
        """A piece from the middle of a prompt. Encoded after a newline, which is then removed,
        so that SentencePiece tokenizers add no word-start space of their own."""
        if not self._newline_ids:
            self._newline_ids = list(self.tokenizer.encode("\n", add_special_tokens=False))
        newline = self._newline_ids
        ids = self._encode_text(f"\n{text}", as_text=as_text)
        return (
            ids[len(newline) :]
            if ids[: len(newline)] == newline
            else self._encode_text(text, as_text=as_text)
        )

    def _encode_text(self, text: str, *, as_text: bool) -> list[int]:
        if not as_text:
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:  # a slow (Python) tokenizer
            return list(
                self.tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)
            )
        # A fast tokenizer's pipeline without its added tokens: normalise, pre-tokenise, model.
        if backend.normalizer is not None:
            text = backend.normalizer.normalize_str(text)
        splits = (
            [text]
            if backend.pre_tokenizer is None
            else [split for split, _ in backend.pre_tokenizer.pre_tokenize_str(text)]
        )
        return [token.id for split in splits for token in backend.model.tokenize(split)]
