"""Decoding constrained to a JSON schema (llguidance): a small model that cannot call tools on its
own still fills a tool's arguments with JSON the schema accepts, greedily, token by token, only
tokens the grammar allows at each step."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import llguidance
import llguidance.hf
import llguidance.torch
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from models.api import ChatMessage, ModelError


class ConstrainedJson:
    """A causal LM from `folder` that answers a chat with JSON matching a schema."""

    def __init__(self, folder: str | Path, *, max_tokens: int = 128) -> None:
        self._tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self._model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
        self._model.eval()
        self._ll_tokenizer = llguidance.hf.from_tokenizer(self._tokenizer)
        self._max_tokens = max_tokens
        self._lock = threading.Lock()  # one generation at a time on this model

    def generate(self, messages: Sequence[ChatMessage], schema: dict[str, Any]) -> dict[str, Any]:
        """The JSON object the model writes for `messages`, constrained to `schema`. Blocking
        (run it in a worker thread). Raises ModelError when it does not finish in max_tokens."""
        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            schema, defaults={"whitespace_flexible": False}
        )
        matcher = llguidance.LLMatcher(self._ll_tokenizer, grammar)
        if matcher.is_error():
            raise ModelError(f"schema not usable: {matcher.get_error()}")
        prompt = self._tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True,
            tokenize=False,
        )
        ids = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        vocab = self._model.config.vocab_size
        bitmask = llguidance.torch.allocate_token_bitmask(1, self._ll_tokenizer.vocab_size)
        out: list[int] = []
        with self._lock, torch.inference_mode():
            past = None
            step_ids = ids
            while len(out) < self._max_tokens:
                result = self._model(input_ids=step_ids, cache=past, use_cache=True)
                past = result.past_key_values
                logits = result.logits[:, -1, :].float()
                llguidance.torch.fill_next_token_bitmask(matcher, bitmask, 0)
                masked = logits[:, : self._ll_tokenizer.vocab_size].clone()
                llguidance.torch.apply_token_bitmask_inplace(masked, bitmask)
                token = int(torch.argmax(masked, dim=-1))
                if token >= vocab or token == self._tokenizer.eos_token_id:
                    break
                if not matcher.consume_token(token):
                    break
                step = [token, *matcher.compute_ff_tokens()]  # tokens the grammar forces
                if len(step) > 1 and not matcher.consume_tokens(step[1:]):
                    break
                out.extend(step)
                if matcher.is_stopped():
                    break
                step_ids = torch.tensor([step])
        text = self._tokenizer.decode(out, skip_special_tokens=True)
        try:
            value = json.loads(text)
        except ValueError as error:
            raise ModelError(f"the arguments were not finished: {text[:80]!r}") from error
        if not isinstance(value, dict):
            raise ModelError("the arguments are not an object")
        return value
