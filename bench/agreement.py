"""Reply quality of the fast CPU path: greedy replies to a fixed set of prompts (bench/data/
agreement-prompts.txt, 128 of them) from the batching engine, once per `--weights` ("auto": as
shipped), against serial `generate` in float32, the reference; and, where llama-cpp-python is
installed in its own venv (bench/peers.py --venvs), llama.cpp's F16 and Q4_1 against its F32 on
the same prompts, the yardstick (issue 16: the fast path must agree with float32 at least as often
as llama.cpp F16 does with its F32). All in one run.

    PYTHONPATH=. python bench/agreement.py [--tokens 32] [--threads 2] [--weights auto,float32]
                                           [--venvs DIR] [--llama-server PATH] [--out FILE]

--llama-server: llama.cpp's own server binary (built from the llama-cpp-python sdist's vendored
llama.cpp) for the Q4_1-against-F32 row, where llama-cpp-python is not installed.

Figures per row: replies identical to the reference, and the mean share of the reference reply's
characters before the first difference. The last line is one JSON object (also saved to
bench/results/agreement-cpu.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

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
RESULTS = Path(__file__).resolve().parent / "results" / "agreement-cpu.json"
SYSTEM = "You are botloom, a friendly and concise assistant in a chat. Answer in a few sentences."
LLAMA = """import json, sys
import llama_cpp.llama_cpp as c
from llama_cpp import Llama
path, threads, tokens, system = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if path.endswith("Q4_1.gguf"):  # its AMX kernel dies here: see bench/peers.py
    default = c.llama_model_default_params
    def params():
        p = default(); p.use_extra_bufts = False; return p
    c.llama_model_default_params = params
llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=1024,
            verbose=False)
out = []
for prompt in json.loads(sys.stdin.read()):
    r = llm.create_chat_completion(messages=[{"role": "system", "content": system},
        {"role": "user", "content": prompt}], max_tokens=tokens, temperature=0.0, top_k=1,
        repeat_penalty=1.1)
    out.append(r["choices"][0]["message"]["content"])
print(json.dumps(out))
"""


def agreement(replies: list[str], reference: list[str]) -> dict[str, Any]:
    def prefix(a: str, b: str) -> int:
        pairs = enumerate(zip(a, b, strict=False))
        return next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))

    pairs = list(zip(replies, reference, strict=True))
    shares = [1.0 if a == b else prefix(a, b) / max(len(b), 1) for a, b in pairs]
    return {
        "identical": sum(a == b for a, b in pairs),
        "of": len(pairs),
        "prefix_share": round(sum(shares) / len(shares), 3),
    }


def engine_replies(
    model: Any, tokenizer: Any, prompts: list[list[int]], params: GenerationParams, weights: str
) -> tuple[list[str], dict[str, Any]]:
    """Every prompt submitted at once (batched as the engine batches them), and what ran."""
    batcher = create_batcher(model, EngineConfig(weights=weights))  # type: ignore[arg-type]
    eos = eos_token_ids(model, tokenizer)
    texts: list[list[str]] = [[] for _ in prompts]
    done = [threading.Event() for _ in prompts]
    try:
        for ids, text, event in zip(prompts, texts, done, strict=True):
            batcher.submit(
                EngineRequest(
                    prompt_ids=ids,
                    params=params,
                    max_new_tokens=params.max_new_tokens,
                    stop_token_ids=eos,
                    text=ReplyText(tokenizer, (), eos, text.append),
                    done=lambda error, event=event: event.set(),
                )
            )
        for event in done:
            event.wait()
        runner = batcher.runner  # type: ignore[attr-defined]
        ran = {"weights": str(runner.weights), "compact": bool(getattr(runner, "compact", False))}
    finally:
        batcher.close()
    return ["".join(t) for t in texts], ran


def float32_replies(
    model: Any, tokenizer: Any, prompts: list[list[int]], params: GenerationParams
) -> list[str]:
    """The reference: serial `generate` on the float32 model, one prompt at a time."""
    replies = []
    eos = eos_token_ids(model, tokenizer)
    for ids in prompts:
        pieces: list[str] = []
        generate_reply(
            model,
            tokenizer,
            ids,
            params,
            max_new_tokens=params.max_new_tokens,
            stop_token_ids=eos,
            emit=pieces.append,
            cancelled=threading.Event(),
        )
        replies.append("".join(pieces))
    return replies


def llama_rows(args: argparse.Namespace, questions: list[str]) -> dict[str, Any]:
    """llama.cpp's F16 and Q4_1 against its F32, through llama-cpp-python in its own venv."""
    llama = args.venvs / "llama" / "bin" / "python"
    if not llama.is_file():
        return {"llamacpp": f"llama-cpp-python not installed ({llama})"}
    files = {name: args.venvs / f"SmolLM2-135M-Instruct.{name}.gguf" for name in ("F32", "F16")}
    files["Q4_1"] = embedded_gguf_path()
    missing = [name for name, path in files.items() if not path.is_file()]
    if missing:
        return {"llamacpp": f"{', '.join(missing)} GGUF missing: run bench/peers.py first"}
    runs = {}
    for name, gguf in files.items():
        command = [str(llama), "-c", LLAMA, str(gguf), str(args.threads), str(args.tokens), SYSTEM]
        out = subprocess.run(
            command, input=json.dumps(questions), capture_output=True, text=True, check=True
        )
        runs[name] = json.loads(out.stdout)
    return {
        "llamacpp_f16_vs_f32": agreement(runs["F16"], runs["F32"]),
        "llamacpp_q4_1_vs_f32": agreement(runs["Q4_1"], runs["F32"]),
    }


def llama_server_rows(args: argparse.Namespace, questions: list[str]) -> dict[str, Any]:
    """llama.cpp's own llama-server (--llama-server) on Q4_1 and on F32 (made from it with the
    build's llama-quantize, beside the binary), greedy one prompt at a time: Q4_1 against F32."""
    binary: Path = args.llama_server
    runs = {}
    for name in ("F32", "Q4_1"):
        gguf = embedded_gguf_path()
        if name == "F32":
            gguf = binary.parent / "SmolLM2-135M-Instruct.F32.gguf"
            if not gguf.is_file():
                quantize = [str(binary.parent / "llama-quantize"), "--allow-requantize"]
                subprocess.run([*quantize, str(embedded_gguf_path()), str(gguf), name], check=True)
        command = [str(binary), "-m", str(gguf), "-t", str(args.threads), "-tb", str(args.threads),
                   "-np", "1", "-c", "1024", "--host", "127.0.0.1", "--port", "8739"]  # fmt: skip
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            runs[name] = [_llama_server_reply(q, args.tokens) for q in questions]
        finally:
            server.terminate()
            server.wait(30)
    return {"llama_server_q4_1_vs_f32": agreement(runs["Q4_1"], runs["F32"])}


def _llama_server_reply(question: str, tokens: int) -> str:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    body = {"messages": messages, "max_tokens": tokens, "temperature": 0.0, "top_k": 1,
            "repeat_penalty": 1.1}  # fmt: skip
    request = urllib.request.Request(
        "http://127.0.0.1:8739/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    for _ in range(300):  # the server loads the model first
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                return str(json.loads(response.read())["choices"][0]["message"]["content"])
        except (urllib.error.URLError, ConnectionError):
            time.sleep(1.0)
    raise RuntimeError("llama-server did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", default="auto,float32", help="engine weights, one row each")
    venvs = Path(os.environ.get("BOTLOOM_PEERS_VENVS", "peers-venvs"))
    parser.add_argument("--venvs", type=Path, default=venvs)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "botloom")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--llama-server", type=Path, help="llama.cpp's llama-server binary")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    questions = [line.strip() for line in PROMPTS.read_text().splitlines() if line.strip()]
    model, tokenizer, _ = load_model(EMBEDDED_DEFAULT, cache_dir=args.cache_dir, device="cpu")
    template = ChatTemplate(tokenizer, "embedded")
    prompts = [
        template.encode([ChatMessage("system", SYSTEM), ChatMessage("user", q)]) for q in questions
    ]
    params = GenerationParams(max_new_tokens=args.tokens, temperature=0.0, repetition_penalty=1.1)
    reference = float32_replies(model, tokenizer, prompts, params)
    result: dict[str, Any] = {"prompts": len(questions), "tokens": args.tokens}
    for weights in args.weights.split(","):
        replies, ran = engine_replies(model, tokenizer, prompts, params, weights)
        result[f"botloom_engine_{weights}_vs_float32"] = {**agreement(replies, reference), **ran}
        print(f"  engine weights={weights}: ran {ran}", file=sys.stderr)
    result.update(llama_rows(args, questions))
    if args.llama_server is not None:
        result.update(llama_server_rows(args, questions))
    line = json.dumps(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
