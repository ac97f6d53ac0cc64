"""The in-process engine's choices that settings name, importable without torch.

`models.engine` imports transformers and torch; the settings check BOTLOOM_ENGINE and
BOTLOOM_ENGINE_WEIGHTS before any model is loaded, so the names live here, once, for both.
"""

from __future__ import annotations

from typing import Literal, get_args

Engine = Literal["auto", "batched", "serial"]
"""Which ChatModel runs a loaded model: "batched" (BatchedChatModel), "serial"
(HuggingFaceChatModel), or "auto" (batched where the model can be batched)."""

ENGINES: tuple[str, ...] = get_args(Engine)

EngineWeights = Literal["auto", "int4", "fp16", "bf16", "int8", "float32"]
"""The weights the CPU backend runs a float32 model on (see EngineConfig.weights)."""

ENGINE_WEIGHTS: tuple[str, ...] = get_args(EngineWeights)
