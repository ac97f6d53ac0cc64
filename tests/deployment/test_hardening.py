"""Issue 24, item 12: what the deployment files must hold back, read from the files themselves.

- the bot and the model server share one API key (compose: one required variable; Kubernetes: one
  generated Secret), whatever serves the model (botloom's model server or vLLM);
- no secret has a default value in compose, and the database password and the model API key are
  required there (`${VAR:?message}`);
- a NetworkPolicy limits where the bot's pods (and the knowledge Job's) may connect to;
- every PostgreSQL URL verifies the server's certificate (`sslmode=verify-full`) against a CA
  bundle that is mounted where the URL says;
- Jobs have a deadline, a retry limit and a time to live, run as non-root with a read-only root
  file system, and never see the Bot Framework app password.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = ROOT / "deployment"
KUBERNETES = DEPLOYMENT / "kubernetes"
COMPOSE = DEPLOYMENT / "compose.yaml"

BOT = {"app.kubernetes.io/name": "botloom", "app.kubernetes.io/component": "bot"}
MODEL = {"app.kubernetes.io/name": "botloom", "app.kubernetes.io/component": "model"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|API_KEY|TOKEN", re.IGNORECASE)
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}
VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


# --- reading the files ----------------------------------------------------------------------------
def manifests() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object in the source YAML (not kustomizations), with its file."""
    found = []
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def kustomizations() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, yaml.safe_load(path.read_text()))
        for path in sorted(KUBERNETES.rglob("kustomization.yaml"))
    ]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The pod template of a Deployment, Job or CronJob."""
    spec = doc.get("spec") or {}
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return (spec.get("template") or {}).get("spec")


def job_specs() -> list[tuple[str, dict[str, Any]]]:
    """(where, Job spec) of every Job and every CronJob's job template."""
    jobs = []
    for path, doc in manifests():
        name = doc["metadata"].get("name") or doc["metadata"].get("generateName")
        where = f"{path.relative_to(DEPLOYMENT)}: {doc['kind']} {name}"
        if doc["kind"] == "Job":
            jobs.append((where, doc["spec"]))
        elif doc["kind"] == "CronJob":
            jobs.append((where, doc["spec"]["jobTemplate"]["spec"]))
    return jobs


def generated_secret_keys() -> dict[str, set[str]]:
    """Secret name -> the keys its secretGenerator gives it (from the env files or, where the
    real file is git-ignored, its .example; a generated file has neither)."""
    keys: dict[str, set[str]] = {}
    for path, kustomization in kustomizations():
        for generator in kustomization.get("secretGenerator") or []:
            names = keys.setdefault(generator["name"], set())
            for env in generator.get("envs") or []:
                file = path.parent / env
                if not file.exists():
                    file = file.with_name(file.name + ".example")
                if file.exists():
                    names.update(env_lines(file))
            for literal in generator.get("literals") or []:
                names.add(literal.partition("=")[0])
    return keys


def env_lines(path: Path) -> dict[str, str]:
    pairs = (line.partition("=") for line in path.read_text().splitlines())
    return {k.strip(): v for k, sep, v in pairs if sep and not k.lstrip().startswith("#")}


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod.get("containers") or []) + list(pod.get("initContainers") or [])


def pods_with(labels: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of every workload whose pod template carries `labels`."""
    found = []
    for path, doc in manifests():
        pod = pod_spec(doc)
        if pod is None:
            continue
        spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
        template_labels = spec["template"].get("metadata", {}).get("labels", {})
        if labels.items() <= template_labels.items():
            found.append((f"{path.name}: {doc['kind']}", pod))
    return found


def api_key_refs(pod: dict[str, Any], names: tuple[str, ...]) -> list[tuple[str, str] | str]:
    """For each container: the (Secret, key) its API key variable comes from, or what is wrong."""
    refs: list[tuple[str, str] | str] = []
    for container in pod["containers"]:
        entries = [e for e in container.get("env") or [] if e["name"] in names]
        if not entries:
            refs.append(f"{container['name']}: none of {names}")
            continue
        for entry in entries:
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
            if not ref or "value" in entry:
                refs.append(f"{container['name']}: {entry['name']} is not from a Secret")
            else:
                refs.append((ref["name"], ref["key"]))
    return refs


def compose_project() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def compose_variables() -> list[tuple[str, str, str]]:
    """(name, operator, default or message) of every ${…} in compose.yaml's text."""
    return [(m[1], m[2] or "", m[3] or "") for m in VARIABLE.finditer(COMPOSE.read_text())]


# --- the model server's API key -------------------------------------------------------------------
def test_compose_bot_and_model_servers_share_one_required_api_key() -> None:
    services = compose_project()["services"]
    values = {
        "bot": services["bot"]["environment"].get("BOTLOOM_MODEL_API_KEY"),
        "model-server": services["model-server"]["environment"].get("BOTLOOM_MODEL_API_KEY"),
        "vllm": services["vllm"]["environment"].get("VLLM_API_KEY"),
    }
    variables = {name: VARIABLE.fullmatch(str(value or "")) for name, value in values.items()}
    assert all(variables.values()), f"each must be one ${{VARIABLE}}: {values}"
    assert {m[1] for m in variables.values() if m} == {"BOTLOOM_MODEL_API_KEY"}, values
    assert all(m and m[2] == ":?" and m[3] for m in variables.values()), (
        f"the API key must be required with a message (${{VAR:?message}}): {values}"
    )


def test_kubernetes_bot_and_model_servers_share_one_generated_api_key_secret() -> None:
    refs = set()
    for labels, names in (
        (BOT, ("BOTLOOM_MODEL_API_KEY",)),
        (MODEL, ("BOTLOOM_MODEL_API_KEY", "VLLM_API_KEY")),
    ):
        pods = [p for p in pods_with(labels) if "Deployment" in p[0]]
        assert pods, f"no Deployment with {labels}"
        for where, pod in pods:
            found = api_key_refs(pod, names)
            problems = [r for r in found if isinstance(r, str)]
            assert not problems, f"{where}: {problems}"
            refs.update(r for r in found if isinstance(r, tuple))
    assert len(refs) == 1, f"the bot and the model servers use different keys: {refs}"
    ((secret, key),) = refs
    # The Secret is generated (kustomize secretGenerator), from a file that git never sees.
    generators = {
        g["name"]: (path, g) for path, k in kustomizations() for g in k.get("secretGenerator") or []
    }
    assert secret in generators, f"no secretGenerator makes {secret}"
    path, generator = generators[secret]
    (env_file,) = generator["envs"]
    ignored = (DEPLOYMENT / ".gitignore").read_text().split()
    assert (
        env_file in ignored
        or (path.parent / env_file).relative_to(DEPLOYMENT).as_posix() in ignored
    )
    # No example to copy: the README and the kustomization say how to generate the key.
    assert not (path.parent / f"{env_file}.example").exists()
    generate = f"printf '{key}=%s\\n' \"$(openssl rand -hex 32)\" > "
    assert generate in (path.parent / "kustomization.yaml").read_text()
    assert generate in (DEPLOYMENT / "README.md").read_text()


# --- no default secrets in compose ----------------------------------------------------------------
def test_compose_secrets_have_no_default_value() -> None:
    defaults = [
        f"${{{name}{op}{value}}}"
        for name, op, value in compose_variables()
        if SECRET_NAME.search(name) and op in (":-", "-") and value
    ]
    assert defaults == []


@pytest.mark.parametrize("name", ["POSTGRES_PASSWORD", "BOTLOOM_MODEL_API_KEY"])
def test_compose_requires_the_database_password_and_the_model_api_key(name: str) -> None:
    uses = [(op, value) for n, op, value in compose_variables() if n == name]
    assert uses, f"{name} is not used"
    assert all(op == ":?" and value.strip() for op, value in uses), uses


# --- egress ---------------------------------------------------------------------------------------
def egress_policies_for(labels: dict[str, str]) -> list[dict[str, Any]]:
    return [
        doc
        for _, doc in manifests()
        if doc["kind"] == "NetworkPolicy"
        and "Egress" in doc["spec"].get("policyTypes", [])
        and doc["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
        and not doc["spec"]["podSelector"].get("matchExpressions")
    ]


def allowed_ports(policies: list[dict[str, Any]]) -> set[tuple[str, int]]:
    return {
        (port.get("protocol", "TCP"), port["port"])
        for policy in policies
        for rule in policy["spec"].get("egress") or []
        for port in rule.get("ports") or []
    }


def test_a_network_policy_limits_the_bot_pods_egress() -> None:
    policies = egress_policies_for(BOT)
    assert policies, "no NetworkPolicy with policyTypes [Egress] selects the bot's pods"
    ports = allowed_ports(policies)
    # DNS, the model server, PostgreSQL, HTTPS to the Bot Framework / Entra ID / Teams.
    assert {("UDP", 53), ("TCP", 53), ("TCP", 8000), ("TCP", 5432), ("TCP", 443)} <= ports
    for policy in policies:
        for rule in policy["spec"]["egress"]:
            assert rule.get("ports"), f"{policy['metadata']['name']}: a rule allows every port"
    # The model server is reached by its pods' labels, not a range of addresses.
    model_rules = [
        rule
        for policy in policies
        for rule in policy["spec"]["egress"]
        if any(p["port"] == 8000 for p in rule["ports"])
    ]
    assert all(
        peer.get("podSelector", {}).get("matchLabels") == MODEL
        for r in model_rules
        for peer in r["to"]
    ), model_rules


def test_the_knowledge_job_may_reach_only_dns_and_the_database() -> None:
    labels = {"app.kubernetes.io/name": "botloom", "app.kubernetes.io/component": "knowledge"}
    assert pods_with(labels), "no knowledge job"
    policies = egress_policies_for(labels)
    assert policies, "no NetworkPolicy with policyTypes [Egress] selects the knowledge job"
    assert allowed_ports(policies) == {("UDP", 53), ("TCP", 53), ("TCP", 5432)}


# --- verified TLS to PostgreSQL -------------------------------------------------------------------
def database_urls() -> list[tuple[str, str]]:
    urls = []
    for path in sorted(DEPLOYMENT.rglob("*.env*")):
        urls += [(path.name, v) for v in env_lines(path).values() if v.startswith("postgres")]
    for _, doc in manifests():
        pod = pod_spec(doc)
        for container in containers(pod or {}):
            urls += [
                (doc["metadata"].get("name", "?"), str(e["value"]))
                for e in container.get("env") or []
                if str(e.get("value", "")).startswith("postgres")
            ]
    return urls


def test_kubernetes_database_urls_verify_the_server_certificate() -> None:
    urls = database_urls()
    assert any(where.startswith("database.env") for where, _ in urls), urls
    for where, url in urls:
        query = parse_qs(urlsplit(url).query)
        assert query.get("sslmode") == ["verify-full"], f"{where}: {url}"
        assert query.get("sslrootcert"), f"{where}: no sslrootcert (the CA bundle) in {url}"


def test_the_database_ca_bundle_is_mounted_where_the_url_says() -> None:
    (url,) = [u for where, u in database_urls() if where.startswith("database.env")]
    ca_file = Path(parse_qs(urlsplit(url).query)["sslrootcert"][0])
    database_users = [
        (where, pod)
        for where, pod in pods_with({"app.kubernetes.io/name": "botloom"})
        if any(
            (source.get("secretRef") or {}).get("name") == "botloom-database"
            for c in pod["containers"]
            for source in c.get("envFrom") or []
        )
    ]
    assert {where.split(":")[0] for where, _ in database_users} >= {"bot.yaml", "knowledge.yaml"}
    for where, pod in database_users:
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        for container in pod["containers"]:
            mounts = [
                m
                for m in container.get("volumeMounts") or []
                if ca_file.parent == Path(m["mountPath"]) and m.get("readOnly")
            ]
            assert mounts, f"{where}: {ca_file.parent} is not mounted read-only"
            volume = volumes[mounts[0]["name"]]
            assert "configMap" in volume, f"{where}: the CA bundle is not the CA ConfigMap"
            items = volume["configMap"].get("items") or [
                {"key": ca_file.name, "path": ca_file.name}
            ]
            assert ca_file.name in {i["path"] for i in items}, items


# --- least-privilege Jobs ------------------------------------------------------------------------
def test_every_job_has_a_deadline_a_retry_limit_and_a_time_to_live() -> None:
    jobs = job_specs()
    assert jobs, "no Job or CronJob found"
    for where, spec in jobs:
        for field in ("activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished"):
            assert isinstance(spec.get(field), int), f"{where}: no {field}"


def test_every_job_runs_non_root_with_a_read_only_root_file_system() -> None:
    for where, spec in job_specs():
        pod = spec["template"]["spec"]
        assert pod.get("securityContext", {}).get("runAsNonRoot") is True, where
        assert pod.get("automountServiceAccountToken") is False, where
        for container in containers(pod):
            context = container.get("securityContext") or {}
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where


def test_no_job_gets_the_bot_framework_app_password() -> None:
    secrets = generated_secret_keys()
    for where, spec in job_specs():
        for container in containers(spec["template"]["spec"]):
            names = set()
            for source in container.get("envFrom") or []:
                if "secretRef" in source:
                    names |= secrets.get(source["secretRef"]["name"], {"<unknown Secret>"})
            for entry in container.get("env") or []:
                ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    names.add(ref["key"])
            assert not {n for n in names if n.startswith("Microsoft")}, f"{where}: {sorted(names)}"
            assert "BOTLOOM_MODEL_API_KEY" not in names, where
