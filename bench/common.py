"""A closed-loop chat workload for the model benchmarks (bench/engine.py, bench/gpu_bench.py).

K conversations talk to one ChatModel at once, each for a few turns: a turn sends the system
prompt, the whole history so far and a new user message, waits for the whole reply, and the
conversation's next turn follows at once. Conversations start at staggered moments; each turn
asks for a reply length drawn from a range (seeded), as real replies vary.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from models.api import ChatMessage, ChatModel, GenerationParams

SYSTEM_PROMPT = (
    "You are botloom, a friendly and concise assistant in a chat. "
    "Answer in the user's language, in a few sentences."
)
OPENERS = (
    "Hi! Can you suggest a quick recipe for dinner tonight?",
    "What is a good way to start learning Python?",
    "How do I keep my houseplants alive while I travel?",
    "Can you explain what a neural network is in simple words?",
    "What should I pack for a weekend hiking trip?",
    "How can I prepare for a job interview tomorrow?",
    "Tell me something interesting about the moon.",
    "How do I write a polite email asking for a deadline extension?",
    "What are some tips for sleeping better?",
    "Can you recommend a few classic novels?",
    "How does a bicycle stay upright?",
    "What is the difference between weather and climate?",
)
NAMES = (
    "Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro",
    "Ines", "Jonas", "Kemi", "Lena", "Mateo", "Nadia", "Omar", "Priya",
)  # fmt: skip
FOLLOW_UPS = (
    "Thanks! Can you give me one more example?",
    "Could you make that shorter?",
    "Why is that?",
    "Great. What should I avoid?",
    "And how long would that take?",
    "Can you say that in simpler words?",
)

# The (conversation, turn) whose request is being submitted: set around each `stream` call, so
# that a recording batcher can tell which turn a request belongs to.
CURRENT_TURN: contextvars.ContextVar[tuple[int, int]] = contextvars.ContextVar("turn")


@dataclass(frozen=True)
class Workload:
    conversations: int
    turns: int = 3
    min_tokens: int = 16
    max_tokens: int = 64
    stagger_s: float = 1.0  # conversations start uniformly within this window
    temperature: float = 0.0
    repetition_penalty: float = 1.1
    seed: int = 0

    def params(self, conversation: int, turn: int) -> GenerationParams:
        return GenerationParams(
            max_new_tokens=self.reply_tokens(conversation, turn),
            temperature=self.temperature,
            repetition_penalty=self.repetition_penalty,
        )

    def reply_tokens(self, conversation: int, turn: int) -> int:
        rng = random.Random(self.seed * 1_000_003 + conversation * 101 + turn)
        return rng.randint(self.min_tokens, self.max_tokens)

    def user_message(self, conversation: int, turn: int) -> str:
        """Every conversation opens differently (a name, then one of a few questions), so that
        prefix reuse across conversations is limited to what real ones share."""
        if turn == 0:
            name = NAMES[conversation % len(NAMES)]
            if conversation >= len(NAMES):
                name += str(conversation // len(NAMES) + 1)
            opener = OPENERS[(conversation * 5 + self.seed) % len(OPENERS)]
            return f"Hi, I'm {name}. {opener}"
        rng = random.Random(self.seed * 7 + conversation * 13 + turn)
        return rng.choice(FOLLOW_UPS)

    def texts(self) -> list[str]:
        """Every text this workload sends (system prompt and user messages)."""
        return [SYSTEM_PROMPT] + [
            self.user_message(c, t) for c in range(self.conversations) for t in range(self.turns)
        ]

    def start_delay(self, conversation: int) -> float:
        return random.Random(self.seed + conversation).uniform(0.0, self.stagger_s)


@dataclass
class TurnResult:
    conversation: int
    turn: int
    prompt_tokens: int
    latency_s: float  # request sent -> last piece
    ttft_s: float  # request sent -> first piece (the whole latency if the reply is empty)
    reply: str


@dataclass
class RunResult:
    name: str
    conversations: int
    wall_s: float
    tokens: int
    turns: list[TurnResult] = field(default_factory=list)
    reused_tokens: dict[tuple[int, int], int] = field(default_factory=dict)
    cpu_s: float = 0.0  # CPU time of this process (all threads) during the run

    @property
    def tok_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def tok_per_cpu_s(self) -> float:
        """Tokens per CPU-second: the work a token costs, much less sensitive than wall time to
        other processes competing for the cores."""
        return self.tokens / self.cpu_s if self.cpu_s > 0 else 0.0

    def latency(self, q: float) -> float:
        return quantile([t.latency_s for t in self.turns], q)

    def ttft(self, q: float) -> float:
        return quantile([t.ttft_s for t in self.turns], q)

    def prefill_saved(self, first_turn: int = 1) -> tuple[int, int]:
        """(reused, prompt) tokens summed over turns >= first_turn (0-based)."""
        chosen = [t for t in self.turns if t.turn >= first_turn]
        reused = sum(self.reused_tokens.get((t.conversation, t.turn), 0) for t in chosen)
        return reused, sum(t.prompt_tokens for t in chosen)


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (linear interpolation); 0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1])


async def run_conversations(
    model: ChatModel,
    workload: Workload,
    *,
    name: str,
    tokens_generated: Callable[[], int],
) -> RunResult:
    """Run the workload against `model`; `tokens_generated` reads the model's token counter."""
    tokens_before = tokens_generated()
    started = time.perf_counter()
    cpu_started = time.process_time()
    results: list[TurnResult] = []

    async def conversation(index: int) -> None:
        await asyncio.sleep(workload.start_delay(index))
        history: list[ChatMessage] = [ChatMessage("system", SYSTEM_PROMPT)]
        for turn in range(workload.turns):
            history.append(ChatMessage("user", workload.user_message(index, turn)))
            params = workload.params(index, turn)
            prompt_tokens = model.count_tokens(history)
            sent = time.perf_counter()
            first: float | None = None
            pieces: list[str] = []
            token = CURRENT_TURN.set((index, turn))
            try:
                async for piece in model.stream(history, params):
                    if first is None:
                        first = time.perf_counter()
                    pieces.append(piece)
            finally:
                CURRENT_TURN.reset(token)
            done = time.perf_counter()
            reply = "".join(pieces)
            results.append(
                TurnResult(index, turn, prompt_tokens, done - sent, (first or done) - sent, reply)
            )
            history.append(ChatMessage("assistant", reply))

    await asyncio.gather(*(conversation(i) for i in range(workload.conversations)))
    wall = time.perf_counter() - started
    return RunResult(
        name=name,
        conversations=workload.conversations,
        wall_s=wall,
        tokens=tokens_generated() - tokens_before,
        turns=sorted(results, key=lambda t: (t.conversation, t.turn)),
        cpu_s=time.process_time() - cpu_started,
    )


class RecordingBatcher:
    """Wraps a batcher (models.engine.Batcher) and remembers each request's (conversation, turn),
    so that a run can report prefill reuse per turn."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.requests: list[tuple[tuple[int, int], object]] = []

    @property
    def stats(self) -> object:
        return self.inner.stats  # type: ignore[attr-defined]

    def submit(self, request: object) -> None:
        self.requests.append((CURRENT_TURN.get((-1, -1)), request))
        self.inner.submit(request)  # type: ignore[attr-defined]

    def cancel(self, request: object) -> None:
        self.inner.cancel(request)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.inner.close()  # type: ignore[attr-defined]

    def reused_by_turn(self) -> dict[tuple[int, int], int]:
        return {turn: int(getattr(r, "reused_tokens", 0)) for turn, r in self.requests}


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table, columns right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells)
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
