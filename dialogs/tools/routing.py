"""Choosing a tool and its arguments for a model that cannot call tools itself (the embedded
135M default): the tool by meaning — the embedding model scores the message against each tool's
description, and a tool is chosen only above a threshold (calibrated on
bench/data/tools/calibration.jsonl) — then its arguments by decoding constrained to the tool's
JSON schema, kept only where the user's words support them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import numpy as np

from dialogs.tools.api import ToolSpec
from dialogs.tools.arguments import argument_schema, checked_arguments, content_words, evidence
from dialogs.tools.dates import normalise_dates
from models import ChatMessage
from models.embeddings import EmbeddingModel

DEFAULT_THRESHOLD = 0.37  # bench/tools_threshold.py: above every no-tool calibration request
EVIDENCE_BONUS = 0.15  # per argument of the tool's shape in the message (an id, a date, a choice)
READ_MARGIN = 0.1  # a read-only tool this close to a write the message does not name wins


class ArgumentModel(Protocol):
    def generate(self, messages: Sequence[ChatMessage], schema: dict[str, Any]) -> dict[str, Any]:
        """JSON for `schema` from the chat `messages` (blocking). Raises ModelError."""
        ...


@dataclass
class Routed:
    """A tool chosen (or none), its score, its arguments and the required ones missing.
    `filled`: the arguments came with the choice (a model that calls tools gave them), so the
    tool stage does not fill them again."""

    tool: ToolSpec | None
    score: float
    arguments: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    filled: bool = False


class ToolChooser(Protocol):
    """What the tool stage asks a router (ToolRouter here, NativeToolRouter in native.py)."""

    async def choose_in_context(
        self, text: str, previous: str, tools: Sequence[ToolSpec]
    ) -> Routed:
        """The tool `text` asks for (`previous`: the user's message before it), or none."""
        ...

    async def fill(self, tool: ToolSpec, text: str, known: dict[str, Any] | None = None) -> Routed:
        """`tool`'s arguments from `text`, over `known` ones; the required ones missing."""
        ...


def tool_text(tool: ToolSpec) -> str:
    """What a tool is scored by: its name in words, its description and its parameters."""
    params = ", ".join(name.replace("_", " ") for name in tool.properties)
    return f"{tool.name.replace('_', ' ')}: {tool.description} ({params})"


def names_action(write: ToolSpec, read: ToolSpec, text: str) -> bool:
    """Whether `text` names what the `write` tool does and the `read` one does not: a word of
    the write's name or description that is not a word of the read's name."""
    own = content_words(f"{write.name.replace('_', ' ')} {write.description}")
    return bool((own - content_words(read.name.replace("_", " "))) & content_words(text))


def argument_prompt(tool: ToolSpec, text: str, today: date) -> list[ChatMessage]:
    lines = []
    for name, prop in tool.properties.items():
        need = "required" if name in tool.required else "optional, leave out if not given"
        about = prop.get("description") or prop.get("type", "")
        lines.append(f"- {name} ({need}): {about}")
    system = (
        f"Today is {today:%A} {today.isoformat()}. Fill in the arguments of the tool "
        f"{tool.name} ({tool.description}) from the user's message, as JSON. Copy values "
        "from the user's words.\nArguments:\n" + "\n".join(lines)
    )
    return [ChatMessage("system", system), ChatMessage("user", text)]


class ToolRouter:
    """Chooses at most one tool for a message, and fills its arguments."""

    def __init__(
        self,
        embedder: EmbeddingModel,
        arguments: ArgumentModel,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        today: Callable[[], date] = date.today,
    ) -> None:
        self._embedder = embedder
        self._arguments = arguments
        self.threshold = threshold
        self._today = today
        self._vectors: dict[str, np.ndarray] = {}

    async def scores(self, text: str, tools: Sequence[ToolSpec]) -> list[float]:
        """Each tool's score for `text`: the cosine similarity of the message to the tool's
        description, plus a bonus per argument of the tool's shape the message holds."""
        new = [tool_text(t) for t in tools if tool_text(t) not in self._vectors]
        rows = await asyncio.to_thread(self._embedder.embed, [text, *new])
        self._vectors.update(zip(new, rows[1:], strict=True))
        written = normalise_dates(text, self._today())
        return [
            float(np.dot(rows[0], self._vectors[tool_text(t)]))
            + EVIDENCE_BONUS * evidence(t.input_schema, written)
            for t in tools
        ]

    async def choose(self, text: str, tools: Sequence[ToolSpec]) -> Routed:
        """The best tool for `text` when it scores at least the threshold, else none."""
        if not tools:
            return Routed(None, 0.0)
        scores = await self.scores(text, tools)
        best = int(np.argmax(scores))
        if scores[best] < self.threshold:
            return Routed(None, scores[best])
        if not tools[best].read_only:
            reads = [i for i, t in enumerate(tools) if t.read_only]
            near = max(reads, key=lambda i: scores[i], default=None)
            close = near is not None and scores[near] >= scores[best] - READ_MARGIN
            if close and not names_action(tools[best], tools[near], text):
                best = near  # "where is my order A-1?" reads the order, it does not change it
        return Routed(tools[best], scores[best])

    async def choose_in_context(
        self, text: str, previous: str, tools: Sequence[ToolSpec]
    ) -> Routed:
        """`choose`, and for a message that alone chooses nothing but holds an argument of some
        tool's shape ("It's A-20931"), with the user's previous message before it."""
        routed = await self.choose(text, tools)
        if routed.tool is not None or not previous:
            return routed
        written = normalise_dates(text, self._today())
        if not any(evidence(t.input_schema, written) for t in tools):
            return routed
        return await self.choose(f"{previous}\n{text}", tools)

    async def fill(self, tool: ToolSpec, text: str, known: dict[str, Any] | None = None) -> Routed:
        """`tool`'s arguments from `text` (its dates written out first), over `known` ones."""
        written = normalise_dates(text, self._today())
        schema = argument_schema(tool.input_schema, written)
        filled: dict[str, Any] = {}
        if schema["properties"]:
            prompt = argument_prompt(tool, written, self._today())
            filled = await asyncio.to_thread(self._arguments.generate, prompt, schema)
        about = f"{tool.name.replace('_', ' ')} {tool.description}"
        kept, _ = checked_arguments(filled, tool.input_schema, written, about)
        arguments = {**(known or {}), **kept}
        missing = [name for name in tool.required if name not in arguments]
        return Routed(tool, 1.0, arguments, missing)
