"""Reply quality of the fast CPU path: greedy replies to a fixed set of prompts (bench/data/
agreement-prompts.txt, 32 of them) from the engine as shipped (int8 weights, compact decode step,
batched) against serial `generate` in float32; and, where llama-cpp-python is installed in its own
venv (bench/peers.py --venvs), llama.cpp's F16 against its F32 on the same prompts, the yardstick.

    PYTHONPATH=. python bench/agreement.py [--tokens 32] [--threads 2] [--venvs DIR]

Figures: replies identical to the reference, and the mean share of the reference reply's
characters before the first difference. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.api import ChatMessage, GenerationParams
from models.chat_template import ChatTemplate
from models.decoding import ReplyText
from models.embedded import EMBEDDED_DEFAULT, embedded_gguf_path
from models.engine import EngineConfig, create_batcher
from models.engine.request import EngineRequest
from models.hf import generate_reply, load_model
from models.loading import eos_token_ids

PROMPTS = Path(__file__).resolve().parent / "data" / "agreement-prompts.txt"
SYSTEM = "You are botloom, a friendly and concise assistant in a chat. Answer in a few sentences."
LLAMA = """import json, sys
from llama_cpp import Llama
path, threads, tokens, system = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
llm = Llama(model_path=path, n_threads=threads, n_ctx=1024, verbose=False)
out = []
for prompt in json.loads(sys.stdin.read()):
    r = llm.create_chat_completion(messages=[{"role": "system", "content": system},
        {"role": "user", "content": prompt}], max_tokens=tokens, temperature=0.0, top_k=1,
        repeat_penalty=1.1)
    out.append(r["choices"][0]["message"]["content"])
print(json.dumps(out))
"""


def agreement(replies: list[str], reference: list[str]) -> dict[str, float]:
    def prefix(a: str, b: str) -> int:
        return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))

    same = sum(a == b for a, b in zip(replies, reference, strict=True))
    shares = [prefix(a, b) / max(len(b), 1) if a != b else 1.0 for a, b in zip(replies, reference, strict=True)]
    return {"identical": same, "of": len(reference), "prefix_share": round(sum(shares) / len(shares), 3)}


def engine_replies(model, tokenizer, prompts, params) -> list[str]:  # type: ignore[no-untyped-def]
    batcher = create_batcher(model, EngineConfig())
    eos = eos_token_ids(model, tokenizer)
    texts = [[] for _ in prompts]  # type: ignore[var-annotated]
    done = [threading.Event() for _ in prompts]
    try:
        for ids, text, event in zip(prompts, texts, done, strict=True):
            batcher.submit(EngineRequest(
                prompt_ids=ids, params=params, max_new_tokens=params.max_new_tokens,
                stop_token_ids=eos, text=ReplyText(tokenizer, (), eos, text.append),
                done=lambda error, event=event: event.set()))  # fmt: skip
        for event in done:
            event.wait()
        print(f"  engine: weights {batcher.runner.weights}, compact {batcher.runner.compact}", file=sys.stderr)  # type: ignore[attr-defined]  # fmt: skip
    finally:
        batcher.close()
    return ["".join(t) for t in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--venvs", type=Path, default=Path(os.environ.get("BOTLOOM_PEERS_VENVS", "peers-venvs")))
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "botloom")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    questions = [line.strip() for line in PROMPTS.read_text().splitlines() if line.strip()]
    model, tokenizer, _ = load_model(EMBEDDED_DEFAULT, cache_dir=args.cache_dir, device="cpu")
    template = ChatTemplate(tokenizer, "embedded")
    prompts = [template.encode([ChatMessage("system", SYSTEM), ChatMessage("user", q)]) for q in questions]
    params = GenerationParams(max_new_tokens=args.tokens, temperature=0.0, repetition_penalty=1.1)
    reference = []
    for ids in prompts:
        pieces: list[str] = []
        generate_reply(model, tokenizer, ids, params, max_new_tokens=args.tokens, stop_token_ids=eos_token_ids(model, tokenizer),
                       emit=pieces.append, cancelled=threading.Event())  # fmt: skip
        reference.append("".join(pieces))
    result = {"prompts": len(questions), "tokens": args.tokens,
              "botloom_fast_vs_float32": agreement(engine_replies(model, tokenizer, prompts, params), reference)}  # fmt: skip
    llama = args.venvs / "llama" / "bin" / "python"
    if llama.is_file():
        runs = {}
        for name in ("F32", "F16"):
            gguf = args.venvs / f"SmolLM2-135M-Instruct.{name}.gguf"
            if not gguf.is_file():
                break
            out = subprocess.run([str(llama), "-c", LLAMA, str(gguf), str(args.threads), str(args.tokens), SYSTEM],
                                 input=json.dumps(questions), capture_output=True, text=True, check=True)  # fmt: skip
            runs[name] = json.loads(out.stdout)
        if len(runs) == 2:
            result["llamacpp_f16_vs_f32"] = agreement(runs["F16"], runs["F32"])
        else:
            result["llamacpp_f16_vs_f32"] = "F16/F32 GGUF files missing: run bench/peers.py first"
    else:
        result["llamacpp_f16_vs_f32"] = f"llama-cpp-python not installed ({llama})"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
