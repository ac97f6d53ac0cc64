"""`botloom serve` started with BOTLOOM_KNOWLEDGE set, many times, under a parallel CPU load:
does any start crash? (Issue 24, item 1: SIGSEGV in 1 start of 8, a worker thread reading an
unmapped page while the chat model's weights were packed and the embedding model loaded.)

    PYTHONPATH=. python bench/start_crash.py [--starts 20] [--load 1] [--port 3993]

Each start runs the real server in its own process, its SQLite state in a temporary folder and
a folder of a few text files to index, so the chat model (loaded and packed on its load thread)
and the embedding model (loaded on the embedding thread, for the indexing at start) load at the
same time, as in production. A start is done when /readyz answers 200 and the log says the
folder was indexed; it crashed if the process ended before that (a negative exit status is the
signal that killed it). `--load` processes spin on the CPU meanwhile (the machine's other work,
which moves the threads' timing about). The last line is one JSON object (also saved to --out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "start-crash-cpu.json"
ROOT = Path(__file__).resolve().parent.parent
INDEXED = "BOTLOOM_KNOWLEDGE indexed"
SPIN = "import time\nwhile True:\n    sum(range(10000))\n"


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def knowledge_folder(folder: Path) -> Path:
    """A few documents to index: this repository's module docstrings, as text files."""
    folder.mkdir()
    sources = sorted((ROOT / "models" / "engine").glob("*.py"))[:8]
    for source in sources:
        text = source.read_text()
        (folder / f"{source.stem}.txt").write_text(text[: text.find('"""', 3) + 3])
    return folder


def one_start(port: int, timeout_s: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as state:
        docs = knowledge_folder(Path(state) / "docs")
        log_path = Path(state) / "serve.log"
        env = {
            **os.environ,
            "BOTLOOM_STORAGE": f"sqlite:///{state}/botloom.db",
            "BOTLOOM_KNOWLEDGE": str(docs),
        }
        command = [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)]
        started = time.perf_counter()
        with log_path.open("w") as log:
            server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        url, status, is_ready = f"http://127.0.0.1:{port}", "timeout", False
        try:
            while time.perf_counter() - started < timeout_s:
                if server.poll() is not None:
                    status = "crashed"
                    break
                is_ready = is_ready or ready(url)
                if is_ready and INDEXED in log_path.read_text():
                    status = "ok"
                    break
                time.sleep(0.2)
        finally:
            if server.poll() is None:
                server.terminate()
                server.wait(timeout=30)
        result: dict[str, object] = {
            "status": status,
            "exit": server.returncode,
            "seconds": round(time.perf_counter() - started, 1),
        }
        if status != "ok":
            result["log_tail"] = log_path.read_text()[-1500:]
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--load", type=int, default=1, help="CPU-spinning processes alongside")
    parser.add_argument("--port", type=int, default=3993)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.load)]
    starts = []
    try:
        for index in range(args.starts):
            result = one_start(args.port, args.timeout)
            starts.append(result)
            print(f"start {index + 1:>2}: {result['status']} (exit {result['exit']}, "
                  f"{result['seconds']} s)", flush=True)  # fmt: skip
            if result["status"] != "ok":
                print(result["log_tail"], flush=True)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    counts = {s: sum(r["status"] == s for r in starts) for s in ("ok", "crashed", "timeout")}
    summary = {"starts": len(starts), "load_processes": args.load, **counts, "runs": starts}
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))


if __name__ == "__main__":
    main()
