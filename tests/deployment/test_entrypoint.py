"""deployment/docker/entrypoint.sh, run directly (there is no Docker engine here): it passes its
arguments to `botloom` as the image's ENTRYPOINT/CMD do, and with the real embedded default model
the bot it starts turns ready on /readyz and stops on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deployment" / "docker" / "entrypoint.sh"


def clean_env(**overrides: str) -> dict[str, str]:
    """os.environ without botloom's or Bot Framework's settings, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTLOOM_", "MicrosoftApp"))}
    env.update(overrides)
    return env


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["serve"]),
        (["--port", "3979"], ["serve", "--port", "3979"]),
        (["serve", "--host", "0.0.0.0"], ["serve", "--host", "0.0.0.0"]),
        (["model-server", "--port", "8000"], ["model-server", "--port", "8000"]),
        (["chat"], ["chat"]),
    ],
)
def test_entrypoint_passes_arguments_to_botloom(
    tmp_path: Path, args: list[str], expected: list[str]
) -> None:
    # A stand-in `botloom` that prints one argument a line.
    write_script(tmp_path / "botloom", 'for a in "$@"; do echo "$a"; done')
    env = clean_env(PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        [str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=10, check=True
    )
    assert result.stdout.splitlines() == expected


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_status(url: str) -> int | None:
    """The HTTP status of GET url, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def botloom_dir(tmp_path: Path) -> Path:
    """The folder of this interpreter's `botloom` console script; a shim when it has none (a
    virtualenv with the dependencies and PYTHONPATH pointing at the checkout)."""
    scripts = Path(sys.executable).parent
    if (scripts / "botloom").exists():
        return scripts
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    write_script(shim_dir / "botloom", f'exec "{sys.executable}" -m bot.cli "$@"')
    return shim_dir


@pytest.mark.slow
def test_entrypoint_starts_the_bot_and_it_turns_ready(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(
        PATH=f"{botloom_dir(tmp_path)}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=str(ROOT),
        BOTLOOM_PORT=str(port),
        BOTLOOM_STORAGE=f"sqlite:///{tmp_path / 'state.db'}",
        # The default cache: the model converted by earlier runs (or other slow tests) is reused.
        BOTLOOM_CACHE_DIR=str(Path.home() / ".cache" / "botloom"),
    )
    log_path = tmp_path / "bot.log"
    with log_path.open("wb") as log:
        # cwd: no stray .env file from the checkout is read.
        bot = subprocess.Popen(
            [str(ENTRYPOINT)], env=env, cwd=tmp_path, stdout=log, stderr=log, start_new_session=True
        )
        try:
            started = time.monotonic()
            while http_status(f"http://127.0.0.1:{port}/readyz") != 200:
                assert bot.poll() is None, f"the bot exited:\n{log_path.read_text()}"
                assert time.monotonic() - started < 300, f"not ready:\n{log_path.read_text()}"
                time.sleep(0.5)
            assert http_status(f"http://127.0.0.1:{port}/healthz") == 200
            # The entrypoint exec'd botloom, so the signal reaches the bot itself.
            bot.send_signal(signal.SIGTERM)
            assert bot.wait(timeout=60) == 0, log_path.read_text()
        finally:
            # The whole process group: without exec, a botloom child would outlive the shell.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(bot.pid, signal.SIGKILL)
            bot.wait()
