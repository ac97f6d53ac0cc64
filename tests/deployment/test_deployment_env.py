"""The settings each deployment file gives botloom's processes, applied to the real processes.

The environment a container gets is the image's (the Dockerfile's ENV) plus what compose.yaml or
the Kubernetes manifests (and their env files) add. Each test starts the real `botloom` command
with that environment (only the model, the port and the state file changed, so the test needs no
network or GPU) and reads the address it listens on from the kernel: in a container it must be
every interface, or nothing outside the container reaches it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = ROOT / "deployment"
KUBERNETES = DEPLOYMENT / "kubernetes" / "base"
sys.path.insert(0, str(DEPLOYMENT))
import check_policy  # noqa: E402  (deployment/ is not a package)

EVERY_INTERFACE = {"0.0.0.0", "::"}
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}
_VARIABLE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
# What an operator's deployment/.env gives a required variable (${VAR:?message}).
REQUIRED_VALUE = "0123456789abcdef0123456789abcdef"


def dockerfile_env() -> dict[str, str]:
    """The final image's ENV values (KEY=VALUE pairs, continued lines included)."""
    text = (DEPLOYMENT / "docker" / "Dockerfile").read_text().replace("\\\n", " ")
    final_stage = text.rsplit("\nFROM ", 1)[-1]
    env: dict[str, str] = {}
    for line in final_stage.splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def env_lines(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (kustomize's and docker's format: no quotes, no comments
    after a value)."""
    pairs = (line.partition("=") for line in path.read_text().splitlines())
    return {k.strip(): v for k, sep, v in pairs if sep and not k.lstrip().startswith("#")}


def compose_env(service: str) -> dict[str, str]:
    """The service's environment in compose.yaml, ${VAR:-default} read as its default and
    ${VAR:?message} as a value an operator gave."""
    project = yaml.safe_load((DEPLOYMENT / "compose.yaml").read_text())
    environment = project["services"][service].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    return {
        key: _VARIABLE.sub(
            lambda m: REQUIRED_VALUE if m.group(2) == "?" else (m.group(3) or ""), str(value)
        )
        for key, value in environment.items()
    }


def kubernetes_env(manifest: str, container: str) -> dict[str, str]:
    """The container's envFrom ConfigMaps (generated from env files) and env entries."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    config_maps = {
        generator["name"]: [KUBERNETES / path for path in generator.get("envs", [])]
        for generator in kustomization.get("configMapGenerator", [])
    }
    docs = [d for d in yaml.safe_load_all((KUBERNETES / manifest).read_text()) if d]
    (spec,) = [
        c
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
        if c["name"] == container
    ]
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        for path in config_maps.get(source.get("configMapRef", {}).get("name"), []):
            env.update(env_lines(path))
    env.update({e["name"]: str(e.get("value", "")) for e in spec.get("env", [])})
    return env


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on `port` (Linux /proc/net)."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # /proc writes each 32-bit word in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            family = socket.AF_INET if width == 8 else socket.AF_INET6
            found.add(socket.inet_ntop(family, words))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def bound_address(
    command: str,
    env: dict[str, str],
    port: int,
    tmp_path: Path,
    then: Callable[[], None] | None = None,
) -> set[str]:
    """Start `botloom <command>` with exactly `env` (plus PATH and PYTHONPATH) and return the
    addresses it listens on once it listens on `port` (after calling `then`, if given, while it
    still runs)."""
    full_env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
        **env,
    }
    log_path = tmp_path / f"{command}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", command],
            env=full_env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while not (addresses := listening_addresses(port)):
                assert process.poll() is None, f"{command} exited:\n{log_path.read_text()}"
                assert time.monotonic() < deadline, f"not listening:\n{log_path.read_text()}"
                time.sleep(0.2)
            if then is not None:
                then()
            return addresses
        finally:
            process.kill()
            process.wait()


def test_compose_model_server_listens_on_every_interface(tmp_path: Path) -> None:
    port = free_port()
    env = {**dockerfile_env(), **compose_env("model-server")}
    env.update(BOTLOOM_MODEL="fake", BOTLOOM_MODEL_SERVER_PORT=str(port))
    env.update(BOTLOOM_CACHE_DIR=str(tmp_path / "cache"))
    assert bound_address("model-server", env, port, tmp_path) <= EVERY_INTERFACE


def http_status(port: int, path: str, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                status = int(response.status)
        except urllib.error.HTTPError as error:
            status = error.code
        if status != 503 or time.monotonic() > deadline:  # 503: the model is still loading
            return status
        time.sleep(0.2)


def test_compose_model_server_requires_the_bots_api_key(tmp_path: Path) -> None:
    """Issue 24: with compose's environment (the required key given, as deployment/.env gives it)
    the model server refuses /v1/ without the key the bot sends; /health stays open."""
    port = free_port()
    env = {**dockerfile_env(), **compose_env("model-server")}
    env.update(BOTLOOM_MODEL="fake", BOTLOOM_MODEL_SERVER_PORT=str(port))
    env.update(BOTLOOM_CACHE_DIR=str(tmp_path / "cache"))
    key = compose_env("bot").get("BOTLOOM_MODEL_API_KEY")
    assert key and env.get("BOTLOOM_MODEL_API_KEY") == key
    statuses: dict[str, int] = {}

    def requests() -> None:
        statuses["/health"] = http_status(port, "/health", None)
        statuses["no key"] = http_status(port, "/v1/models", None)
        statuses["another key"] = http_status(port, "/v1/models", "not-" + key)
        statuses["the bot's key"] = http_status(port, "/v1/models", key)

    bound_address("model-server", env, port, tmp_path, then=requests)
    assert statuses == {"/health": 200, "no key": 401, "another key": 401, "the bot's key": 200}


def test_kubernetes_model_server_listens_on_every_interface(tmp_path: Path) -> None:
    port = free_port()
    env = {**dockerfile_env(), **kubernetes_env("model-server.yaml", "model-server")}
    env.update(BOTLOOM_MODEL="fake", BOTLOOM_MODEL_SERVER_PORT=str(port))
    env.update(BOTLOOM_CACHE_DIR=str(tmp_path / "cache"), HF_HOME=str(tmp_path / "hf"))
    assert bound_address("model-server", env, port, tmp_path) <= EVERY_INTERFACE


# What an operator fills in (the credentials Secret, deployment/.env): a SingleTenant app.
CREDENTIALS = {
    "MicrosoftAppId": "00000000-0000-0000-0000-000000000001",
    "MicrosoftAppPassword": "not-a-real-secret",
    "MicrosoftAppType": "SingleTenant",
    "MicrosoftAppTenantId": "00000000-0000-0000-0000-000000000002",
}


@pytest.mark.parametrize("source", ["compose", "kubernetes"])
def test_bot_listens_on_every_interface(tmp_path: Path, source: str) -> None:
    port = free_port()
    given = compose_env("bot") if source == "compose" else kubernetes_env("bot.yaml", "bot")
    env = {**dockerfile_env(), **given, **CREDENTIALS}
    env.update(BOTLOOM_PORT=str(port), BOTLOOM_STORAGE=f"sqlite:///{tmp_path / 'state.db'}")
    env.update(BOTLOOM_CACHE_DIR=str(tmp_path / "cache"))
    assert bound_address("serve", env, port, tmp_path) <= EVERY_INTERFACE


def every_settings_name() -> list[tuple[str, str]]:
    """(file, name) for each BOTLOOM_ / Microsoft name the deployment files set."""
    names = [("Dockerfile", name) for name in dockerfile_env()]
    project = yaml.safe_load((DEPLOYMENT / "compose.yaml").read_text())
    names += [("compose.yaml", n) for s in project["services"] for n in compose_env(s)]
    for path in DEPLOYMENT.rglob("*.env*"):
        names += [(path.name, n) for n in env_lines(path)]
    return [(f, n) for f, n in names if n.startswith(("BOTLOOM_", "Microsoft"))]


def test_every_settings_name_in_the_deployment_files_is_known() -> None:
    from bot.settings import known_env_names

    unknown = [(f, n) for f, n in every_settings_name() if n not in known_env_names()]
    assert unknown == []


def test_the_names_policy_refuses_a_name_botloom_does_not_know(tmp_path: Path) -> None:
    env_file = tmp_path / "model-server.env"
    env_file.write_text("BOTLOOM_HOST=0.0.0.0\nBOTLOOM_MODEL_SERVR_HOST=0.0.0.0\nHF_HOME=/x\n")
    problems = list(check_policy.names(env_file))
    assert len(problems) == 1 and "BOTLOOM_MODEL_SERVR_HOST" in problems[0], problems
