"""GPU benchmark (run it with bench/gpu.sh): naive `generate`, static batching and botloom's engine
on a Qwen2-0.5B-shaped model, side by side in one process, within a hard time budget.

    bench/gpu.sh                # on the GPU machine: about 3 minutes, at most 4.5
    bench/gpu.sh --dry-run      # the same code path on the CPU with a tiny Qwen2, in a minute

The machine has no internet: the model is built from an inline config (hidden 896, 24 layers,
14 heads, 2 KV heads, MLP 4864, vocabulary 151,936, tied embeddings) with random weights, in
bf16, directly on the GPU; the tokenizer is a word-level one built here over the workload's words
plus filler words, with a ChatML-like template, so the engine runs its whole ChatModel path
(template, streaming, detokenisation). Random weights would emit EOS at random: EOS is off and
every reply has exactly its drawn length.

Workload (bench/common.py): K = 1, 8, 32, 128 conversations x 3 turns in a closed loop, history
re-sent every turn, reply lengths drawn from 32-128 tokens, greedy, all conversations start at
once. Compared:
- naive: botloom's serial engine (HuggingFaceChatModel: one `generate` per request, serialised).
  Measured at K = 1; for larger K its closed loop is simulated (a FIFO single server) from the
  service times measured at K = 1, since serving 384 replies one by one would not fit the budget.
- static: one `generate` over all K prompts of a turn (left padding), the next turn when the
  longest reply is done; a reply counts as complete at the step where it reaches its length.
- engine: BatchedChatModel with PagedBatcher (transformers' ContinuousBatchingManager, paged KV
  cache with 16-token blocks and prefix sharing); if time is left, at K = 32 also with CUDA graphs
  forced on, then with asynchronous batching as well (transformers enables both by itself only
  with flash attention).
Figures: aggregate generated tok/s, p50/p95 reply latency, p50 time to first token, % of the
bandwidth bound (K x copy bandwidth / (weight bytes + K x mean context x KV bytes per token),
copy bandwidth measured here), and the prompt tokens whose prefill was shared on turns 2-3.
The JSON (the last line) is rewritten after every phase to bench/results/gpu-<card>.json, so a
run cut short still leaves what it measured.
"""

# ruff: noqa: E402  (the clock starts before the heavy imports: they count against the budget)
from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse
import asyncio
import json
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    SYSTEM_PROMPT,
    RecordingBatcher,
    RunResult,
    TurnResult,
    Workload,
    format_table,
    run_conversations,
)
from models.api import ChatMessage, GenerationParams
from models.chat_template import ChatTemplate
from models.engine import BatchedChatModel, EngineConfig, create_batcher
from models.hf import HuggingFaceChatModel

QWEN2_05B = {
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": True,
}
TINY_QWEN2 = {
    "vocab_size": 2048,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}
SPECIALS = ("<unk>", "<pad>", "<|im_start|>", "<|im_end|>", "system", "user", "assistant")
TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)
BLOCK_SIZE = 16
GREEDY_NO_PENALTY = GenerationParams(temperature=0.0, repetition_penalty=1.0)


@dataclass(frozen=True)
class Setup:
    device: torch.device
    dtype: torch.dtype
    shape: dict[str, Any]
    ks: list[int]
    min_tokens: int
    max_tokens: int
    budget_s: float
    copy_bytes: int


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny model on the CPU")
    parser.add_argument("--ks", default=None, help="conversations, comma-separated")
    parser.add_argument("--budget-s", type=float, default=None, help="hard time budget")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--no-graphs", action="store_true", help="skip the CUDA-graphs variant")
    return parser.parse_args()


def make_setup(args: argparse.Namespace) -> Setup:
    if args.dry_run:
        torch.set_num_threads(1)  # a busy shared CPU stalls multi-threaded kernels
        return Setup(
            device=torch.device("cpu"),
            dtype=torch.float32,
            shape=TINY_QWEN2,
            ks=[int(k) for k in (args.ks or "1,2,4").split(",")],
            min_tokens=4,
            max_tokens=8,
            budget_s=args.budget_s or 150.0,
            copy_bytes=64 << 20,
        )
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --dry-run to check the script on the CPU")
    return Setup(
        device=torch.device("cuda", 0),
        dtype=torch.bfloat16,
        shape=QWEN2_05B,
        ks=[int(k) for k in (args.ks or "1,8,32,128").split(",")],
        min_tokens=32,
        max_tokens=128,
        budget_s=args.budget_s or 270.0,
        copy_bytes=2 << 30,
    )


class Clock:
    """The hard budget: phases ask whether their estimated time still fits."""

    def __init__(self, budget_s: float) -> None:
        self.started = STARTED
        self.budget_s = budget_s
        self.took: dict[str, float] = {}  # the last duration of each kind of phase

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def fits(self, estimate_s: float) -> bool:
        return self.left() - 5.0 > estimate_s

    def next_k(self, kind: str) -> float:
        """An estimate for the next, larger K of a kind of phase: three times the last one."""
        return max(15.0, 3.0 * self.took.get(kind, 0.0))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- model, tokenizer, bandwidth ---------------------------------------------------------------


def build_model(setup: Setup) -> Any:
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(**setup.shape)
    torch.manual_seed(0)
    with torch.device(setup.device):
        model = AutoModelForCausalLM.from_config(config, dtype=setup.dtype)
    model.to(setup.device).eval()
    model.generation_config.eos_token_id = None  # random weights: replies get their drawn length
    model.generation_config.pad_token_id = 1
    return model


def build_tokenizer(vocab_size: int, texts: list[str]) -> Any:
    """A word-level tokenizer: SPECIALS, the workload's words, then filler words w<id> up to the
    model's vocabulary; decoding joins words with spaces, so replies re-tokenize to their ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for word in [*SPECIALS, *(w for text in texts for w in text.split())]:
        vocab.setdefault(word, len(vocab))
    if len(vocab) > vocab_size:
        raise ValueError(f"{len(vocab)} words do not fit a vocabulary of {vocab_size}")
    for index in range(len(vocab), vocab_size):
        vocab[f"w{index}"] = index
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = TEMPLATE
    return tokenizer


def copy_bandwidth(setup: Setup) -> float:
    """Device memory bandwidth in GB/s from a large tensor copy (bytes read + bytes written)."""
    source = torch.empty(setup.copy_bytes // 2, dtype=torch.bfloat16, device=setup.device)
    source.fill_(1.0)
    target = torch.empty_like(source)
    for _ in range(3):
        target.copy_(source)
    synchronize(setup.device)
    repeats = 20
    started = time.perf_counter()
    for _ in range(repeats):
        target.copy_(source)
    synchronize(setup.device)
    seconds = time.perf_counter() - started
    del source, target
    return 2 * setup.copy_bytes * repeats / seconds / 1e9


def kv_bytes_per_token(model: Any) -> int:
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    element = torch.finfo(model.dtype).bits // 8
    return config.num_hidden_layers * 2 * config.num_key_value_heads * head_dim * element


# --- the three ways to serve -----------------------------------------------------------------


async def run_naive(model: Any, tokenizer: Any, workload: Workload) -> RunResult:
    serial = HuggingFaceChatModel(model, tokenizer, name="naive", stop_token_ids=())
    try:
        return await run_conversations(
            serial, workload, name="naive", tokens_generated=lambda: serial.tokens_generated
        )
    finally:
        serial.close()


def simulate_naive(
    measured: RunResult, workload: Workload, prompts: dict[tuple[int, int], int]
) -> RunResult:
    """The closed loop of `workload` on one serial server (FIFO), with service times from a
    measured run: time to first token as a linear function of prompt length, then a constant
    time per further token."""
    turns = measured.turns
    per_token = sum((t.latency_s - t.ttft_s) for t in turns) / max(
        sum(workload.reply_tokens(t.conversation, t.turn) - 1 for t in turns), 1
    )
    xs = [t.prompt_tokens for t in turns]
    ys = [t.ttft_s for t in turns]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = (
        max(sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread, 0.0)
        if spread
        else 0.0
    )

    def ttft(prompt: int) -> float:
        return max(mean_y + slope * (prompt - mean_x), 0.0)

    queue: list[tuple[float, int, int]] = [(0.0, c, 0) for c in range(workload.conversations)]
    clock, results, tokens = 0.0, [], 0
    while queue:
        queue.sort()
        arrival, conversation, turn = queue.pop(0)
        start = max(clock, arrival)
        n = workload.reply_tokens(conversation, turn)
        first = ttft(prompts.get((conversation, turn), mean_x))
        clock = start + first + (n - 1) * per_token
        tokens += n
        results.append(
            TurnResult(
                conversation,
                turn,
                prompts.get((conversation, turn), 0),
                clock - arrival,
                start + first - arrival,
                "",
            )
        )
        if turn + 1 < workload.turns:
            queue.append((clock, conversation, turn + 1))
    return RunResult("naive (simulated)", workload.conversations, clock, tokens, results)


class _StepClock:
    """A stopping criterion that never stops: it records when each decode step ends."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: list[float] = []

    def __call__(
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        synchronize(self.device)
        self.times.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def run_static(model: Any, tokenizer: Any, workload: Workload) -> RunResult:
    """Each turn of all conversations as one left-padded `generate` batch."""
    from transformers import StoppingCriteriaList

    template = ChatTemplate(tokenizer, "static")
    device = model.device
    histories = [[ChatMessage("system", SYSTEM_PROMPT)] for _ in range(workload.conversations)]
    results: list[TurnResult] = []
    tokens = 0
    started = time.perf_counter()
    for turn in range(workload.turns):
        for c, history in enumerate(histories):
            history.append(ChatMessage("user", workload.user_message(c, turn)))
        prompts = [template.encode(h) for h in histories]
        lengths = [workload.reply_tokens(c, turn) for c in range(workload.conversations)]
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[1] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        clock = _StepClock(device)
        wave_start = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=max(lengths),
                min_new_tokens=max(lengths),
                do_sample=False,
                eos_token_id=None,
                pad_token_id=1,
                stopping_criteria=StoppingCriteriaList([clock]),
            )
        new = output[:, width:].tolist()
        for c, (history, n) in enumerate(zip(histories, lengths, strict=True)):
            done = clock.times[min(n, len(clock.times)) - 1]
            results.append(
                TurnResult(
                    c, turn, len(prompts[c]), done - wave_start, clock.times[0] - wave_start, ""
                )
            )
            history.append(
                ChatMessage("assistant", tokenizer.decode(new[c][:n], skip_special_tokens=True))
            )
            tokens += n
    return RunResult(
        "static", workload.conversations, time.perf_counter() - started, tokens, results
    )


async def run_engine(
    model: Any, tokenizer: Any, workload: Workload, config: EngineConfig
) -> RunResult:
    batcher = RecordingBatcher(create_batcher(model, config, GREEDY_NO_PENALTY))
    engine = BatchedChatModel(
        model,
        tokenizer,
        name="engine",
        config=config,
        stop_token_ids=(),
        batcher=batcher,  # type: ignore[arg-type]
    )
    try:
        warm = [ChatMessage("user", "hello")]
        async for _ in engine.stream(
            warm, GenerationParams(max_new_tokens=4, temperature=0.0, repetition_penalty=1.0)
        ):
            pass
        batcher.requests.clear()
        result = await run_conversations(
            engine, workload, name="engine", tokens_generated=lambda: engine.tokens_generated
        )
        result.reused_tokens = batcher.reused_by_turn()
        return result
    finally:
        engine.close()


# --- the run -----------------------------------------------------------------------------


def mean_context(result: RunResult, workload: Workload) -> float:
    """Mean KV length a decode step reads, weighted by tokens: prompt + half the reply."""
    weights = [
        (
            t.prompt_tokens + workload.reply_tokens(t.conversation, t.turn) / 2,
            workload.reply_tokens(t.conversation, t.turn),
        )
        for t in result.turns
    ]
    total = sum(n for _, n in weights)
    return sum(c * n for c, n in weights) / total if total else 0.0


def figures(result: RunResult | None) -> dict[str, Any]:
    if result is None:
        return {}
    return {
        "tok_s": round(result.tok_s, 1),
        "p50_s": round(result.latency(0.5), 3),
        "p95_s": round(result.latency(0.95), 3),
        "ttft_p50_s": round(result.ttft(0.5), 3),
        "tokens": result.tokens,
        "wall_s": round(result.wall_s, 2),
    }


def card_slug(setup: Setup) -> tuple[str, str]:
    if setup.device.type != "cuda":
        return "cpu (dry run)", "dry-run"
    name = torch.cuda.get_device_name(setup.device)
    return name, re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def main() -> None:
    args = parse_args()
    setup = make_setup(args)
    clock = Clock(setup.budget_s)
    import transformers

    card, slug = card_slug(setup)
    out = args.out_dir / f"gpu-{slug}.json"
    report: dict[str, Any] = {
        "card": card,
        "dry_run": args.dry_run,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": "Qwen2-0.5B-shaped, random weights"
        if not args.dry_run
        else "tiny Qwen2, random weights",
        "dtype": str(setup.dtype).removeprefix("torch."),
        "block_size": BLOCK_SIZE,
        "reply_tokens": [setup.min_tokens, setup.max_tokens],
        "turns": 3,
        "by_k": [],
        "errors": [],
        "complete": False,
    }

    def save() -> None:
        report["elapsed_s"] = round(clock.elapsed(), 1)
        if not args.dry_run or args.out_dir != Path(__file__).resolve().parent / "results":
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report) + "\n")

    def phase(name: str, action: Callable[[], Any], kind: str = "") -> Any:
        started = time.perf_counter()
        try:
            return action()
        except Exception as error:  # one failed phase must not lose the others' figures
            traceback.print_exc()
            report["errors"].append(f"{name}: {error!r}"[:500])
            return None
        finally:
            try:
                synchronize(setup.device)
            except Exception as error:
                report["errors"].append(f"{name} (synchronize): {error!r}"[:500])
            clock.took[name] = clock.took[kind or name] = time.perf_counter() - started
            save()

    workloads = {
        k: Workload(
            conversations=k,
            turns=3,
            min_tokens=setup.min_tokens,
            max_tokens=setup.max_tokens,
            stagger_s=0.0,
            repetition_penalty=1.0,
        )
        for k in setup.ks
    }
    texts = sorted({text for w in workloads.values() for text in w.texts()} | {"hello"})
    model = build_model(setup)
    tokenizer = build_tokenizer(setup.shape["vocab_size"], texts)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    report["weights_gb"] = round(weight_bytes / 1e9, 3)
    report["kv_bytes_per_token"] = kv_bytes_per_token(model)
    bandwidth = phase("bandwidth", lambda: copy_bandwidth(setup)) or 0.0
    report["copy_bandwidth_gb_s"] = round(bandwidth, 1)
    print(
        f"{card}: {report['weights_gb']} GB of weights, copy bandwidth {bandwidth:.0f} GB/s, "
        f"setup took {clock.elapsed():.0f} s",
        file=sys.stderr,
    )

    # Warm-up (kernels, allocator), then naive at K = 1, measured: its service times drive the
    # naive simulation for larger K.
    phase(
        "warm-up",
        lambda: run_static(
            model,
            tokenizer,
            Workload(conversations=2, turns=1, min_tokens=2, max_tokens=2, stagger_s=0.0),
        ),
    )
    single = Workload(
        conversations=1,
        turns=3,
        min_tokens=setup.min_tokens,
        max_tokens=setup.max_tokens,
        stagger_s=0.0,
        repetition_penalty=1.0,
    )
    naive_measured = phase("naive", lambda: asyncio.run(run_naive(model, tokenizer, single)))

    rows: list[list[Any]] = []
    for k in setup.ks:
        workload = workloads[k]
        entry: dict[str, Any] = {"k": k}
        report["by_k"].append(entry)
        static = None
        if clock.fits(clock.next_k("static")):
            static = phase(
                f"static K={k}", lambda w=workload: run_static(model, tokenizer, w), "static"
            )
        else:
            report["errors"].append(f"static K={k}: skipped, out of time")
        entry["static"] = figures(static)
        engine = None
        if clock.fits(clock.next_k("engine")):
            config = engine_config(k, workload, setup, cuda_graphs=None)
            engine = phase(
                f"engine K={k}",
                lambda w=workload, c=config: asyncio.run(run_engine(model, tokenizer, w, c)),
                "engine",
            )
        else:
            report["errors"].append(f"engine K={k}: skipped, out of time")
        entry["engine"] = figures(engine)
        reference = engine or static
        prompts = (
            {(t.conversation, t.turn): t.prompt_tokens for t in reference.turns}
            if reference
            else {}
        )
        naive = None
        if naive_measured is not None:
            naive = naive_measured if k == 1 else simulate_naive(naive_measured, workload, prompts)
            entry["naive"] = figures(naive) | {
                "method": "measured" if k == 1 else "simulated from K=1 service times"
            }
        if reference is not None:
            context = mean_context(reference, workload)
            bound = (
                k * bandwidth * 1e9 / (weight_bytes + k * context * report["kv_bytes_per_token"])
            )
            entry["mean_context_tokens"] = round(context, 1)
            entry["bound_tok_s"] = round(bound, 1)
            for name, result in (("naive", naive), ("static", static), ("engine", engine)):
                if result is not None and bound > 0:
                    entry[name]["pct_of_bound"] = round(100 * result.tok_s / bound, 2)
        if engine is not None:
            reused, prompt = engine.prefill_saved(first_turn=1)
            entry["engine"]["prefill_saved_turns_2_3"] = (
                round(reused / prompt, 3) if prompt else 0.0
            )
            if naive is not None:
                entry["engine_vs_naive"] = round(engine.tok_s / naive.tok_s, 2)
            if static is not None:
                entry["engine_vs_static"] = round(engine.tok_s / static.tok_s, 2)
        save()
        for name, result in (("naive", naive), ("static", static), ("engine", engine)):
            if result is not None:
                f = entry[name]
                rows.append(
                    [
                        k,
                        name,
                        f["tok_s"],
                        f["p50_s"],
                        f["p95_s"],
                        f["ttft_p50_s"],
                        f.get("pct_of_bound", ""),
                        f.get("prefill_saved_turns_2_3", ""),
                    ]
                )
        print(f"K={k} done at {clock.elapsed():.0f} s", file=sys.stderr)

    # CUDA graphs (and asynchronous batching): transformers turns them on by itself only with
    # flash attention. Try them last: a failure here cannot spoil the figures above.
    graph_k = 32 if 32 in setup.ks else setup.ks[-1]
    variants = [("engine_cuda_graphs", True, None), ("engine_cuda_graphs_async", True, True)]
    for key, graphs_on, async_on in variants:
        # Capturing graphs takes a while; then the run should be faster than without them.
        if args.no_graphs or not clock.fits(
            1.5 * clock.took.get(f"engine K={graph_k}", 30.0) + 30.0
        ):
            report["errors"].append(f"{key}: skipped (out of time or --no-graphs)")
            continue
        if async_on and setup.device.type != "cuda":
            report["errors"].append(f"{key}: skipped (asynchronous batching needs CUDA)")
            continue
        workload = workloads[graph_k]
        config = engine_config(
            graph_k, workload, setup, cuda_graphs=graphs_on, async_batching=async_on
        )
        result = phase(
            f"{key} K={graph_k}",
            lambda w=workload, c=config: asyncio.run(run_engine(model, tokenizer, w, c)),
            "graphs",
        )
        if result is None:
            break  # a failed variant may have left the device in a bad state
        entry = next(e for e in report["by_k"] if e["k"] == graph_k)
        entry[key] = figures(result)
        if entry.get("bound_tok_s"):
            entry[key]["pct_of_bound"] = round(100 * result.tok_s / entry["bound_tok_s"], 2)
        f = entry[key]
        label = key.replace("engine_cuda_graphs", "engine+graphs").replace("_async", "+async")
        rows.append(
            [
                graph_k,
                label,
                f["tok_s"],
                f["p50_s"],
                f["p95_s"],
                f["ttft_p50_s"],
                f.get("pct_of_bound", ""),
                "",
            ]
        )

    target = next(
        (e for e in report["by_k"] if e["k"] == 32), report["by_k"][-1] if report["by_k"] else {}
    )
    report["k32"] = {
        "engine_vs_naive": target.get("engine_vs_naive"),
        "engine_pct_of_bound": target.get("engine", {}).get("pct_of_bound"),
        "engine_cuda_graphs_pct_of_bound": target.get("engine_cuda_graphs", {}).get("pct_of_bound"),
        "engine_cuda_graphs_async_pct_of_bound": target.get("engine_cuda_graphs_async", {}).get(
            "pct_of_bound"
        ),
        "prefill_saved_turns_2_3": target.get("engine", {}).get("prefill_saved_turns_2_3"),
    }
    report["complete"] = True
    save()
    print(
        f"\n{card}: {report['model']} ({report['dtype']}), copy bandwidth {bandwidth:.0f} GB/s, "
        f"3 turns, replies of {setup.min_tokens}-{setup.max_tokens} tokens, greedy; "
        f"naive for K > 1 simulated from measured K = 1 service times"
    )
    print(
        format_table(
            [
                "K",
                "serving",
                "tok/s",
                "p50 s",
                "p95 s",
                "ttft p50 s",
                "% of bound",
                "prefill shared t2-3",
            ],
            rows,
        )
    )
    print(json.dumps(report))


def engine_config(
    k: int,
    workload: Workload,
    setup: Setup,
    *,
    cuda_graphs: bool | None,
    async_batching: bool | None = None,
) -> EngineConfig:
    """Room for every conversation's longest prompt and reply twice over (blocks of finished
    turns stay cached for sharing)."""
    longest = 64 + workload.turns * (48 + setup.max_tokens)
    blocks = 2 * k * -(-longest // BLOCK_SIZE) + 64
    return EngineConfig(
        backend="paged",
        max_batch=k,
        max_waiting=k,
        block_size=BLOCK_SIZE,
        kv_cache_blocks=blocks,
        max_batch_tokens=2048 if cuda_graphs else 8192,
        cuda_graphs=cuda_graphs,
        async_batching=async_batching,
    )


if __name__ == "__main__":
    main()
