"""Settings: read once from the environment (and an optional .env file), then passed down by parts.

Bot Framework names are spelled as the ecosystem spells them (MicrosoftAppId, ...); botloom's own
settings share the BOTLOOM_ prefix. Nothing else in botloom reads environment variables. The module
is over 300 lines because every setting is declared here, in one place (docs/configuration.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from models.engine_choices import ENGINE_WEIGHTS, ENGINES

APP_TYPES = ("MultiTenant", "SingleTenant", "UserAssignedMSI")

# bench/prompt_eval.py compared eight candidates on its held-out set (tests/data/prompt_eval.json):
# none answered more often than this one, so it stays (README, "Measured").
DEFAULT_SYSTEM_PROMPT = (
    "You are botloom, a friendly and concise assistant in a chat. "
    "Answer in the user's language, in a few sentences."
)


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    # Where the bot listens.
    host: str = "127.0.0.1"
    port: int = 3978
    # Bot Framework credentials: empty app id means anonymous mode (Emulator, local tests).
    app_id: str = ""
    app_password: str = field(default="", repr=False, metadata={"secret": "value"})
    app_type: str = "MultiTenant"
    app_tenant_id: str = ""
    # The model: "embedded" (the default SmolLM2-135M-Instruct), a hub id, a folder or a .gguf.
    model: str = "embedded"
    model_device: str | None = None
    model_dtype: str | None = None
    cache_dir: Path = Path.home() / ".cache" / "botloom"
    # The in-process engine: "auto" (batched where the model allows it), "batched", or "serial"
    # (one reply at a time). max_batch replies are generated together and max_waiting more may
    # wait for a place; the next request is told the model is busy.
    engine: str = "auto"
    max_batch: int = 16
    max_waiting: int = 64
    prefix_cache_tokens: int = 16384  # CPU: KV cache of recent conversations kept for reuse
    kv_block_size: int = 16  # CUDA: tokens per KV-cache block (prefixes are shared in blocks)
    # A remote model: an OpenAI-compatible server (`botloom model-server`, vLLM, TGI, Ollama).
    # When model_url is set the bot uses it (and BOTLOOM_MODEL, unless left at "embedded", is the
    # model name sent); model_api_key is sent to it, and `botloom model-server` requires it.
    model_url: str = field(default="", metadata={"secret": "url"})
    model_api_key: str = field(default="", repr=False, metadata={"secret": "value"})
    model_connect_timeout_s: float = 5.0
    model_read_timeout_s: float = 30.0  # the longest silence before or between reply pieces
    model_max_retries: int = 2  # further tries when the server answers 429/503 or is unreachable
    # The served model's tokenizer (a folder, or a downloaded Hugging Face name): exact token
    # counts; without it the remote backend counts an upper bound (a token per UTF-8 byte).
    model_tokenizer: str = ""
    # Where `botloom model-server` listens.
    model_server_host: str = "127.0.0.1"
    model_server_port: int = 8000
    # Conversation and user state: sqlite:///…, postgresql://…, redis://… or memory://.
    storage: str = field(default="sqlite:///data/botloom.db", metadata={"secret": "url"})
    storage_namespace: str = "botloom"  # PostgreSQL table-name prefix, Redis key prefix
    storage_pool_size: int = 10  # PostgreSQL / Redis connections per process
    # PostgreSQL / Redis: a conversation's lock is a lease renewed while its turn runs, so a
    # replica that dies frees its conversations after this long (keep it below lock_wait_s).
    lock_lease_s: float = 8.0
    # Every turn's activities kept in the storage (bot/turns/transcripts.py): off, redacted (no
    # personal data: no text, names or user ids) or full (everything; mind your privacy policy).
    transcripts: str = "off"
    # The assistant's behaviour.
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    context_tokens: int = 2048
    max_new_tokens: int = 200
    temperature: float = 0.3
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    stop: tuple[str, ...] = ()
    typing_interval_s: float = 3.0
    # Streamed replies (Teams, Web Chat / Direct Line): the least time between two updates, and
    # how long a Teams stream may last (Teams ends streams after about two minutes).
    stream_interval_teams_s: float = 1.0
    stream_interval_directline_s: float = 0.5
    stream_limit_teams_s: float = 110.0
    # The endpoint in front of channels.
    max_body_bytes: int = 1024 * 1024
    # Anonymous mode replies only to these serviceUrl prefixes; empty means loopback addresses.
    allowed_service_urls: tuple[str, ...] = ()
    allow_public_anonymous: bool = False  # anonymous mode on a non-loopback host
    # Where to fetch the channel's / Emulator's token signing keys; empty: the public cloud's.
    openid_metadata_url: str = ""
    emulator_openid_metadata_url: str = ""
    # Limits: what one turn, one user and the model may take.
    generation_timeout_s: float = 60.0
    turn_timeout_s: float = 90.0
    max_pending_requests: int = 32
    busy_retry_after_s: float = 5.0
    max_queued_turns: int = 1000
    # One conversation's share of the turn queue: past it that conversation gets 429 (and one
    # notice a minute), while the others are still admitted.
    max_queued_turns_per_conversation: int = 20
    lock_wait_s: float = 10.0
    rate_limit_per_minute: int = 20
    # Operations.
    drain_s: float = 20.0  # on SIGTERM: how long turns in flight may take to finish
    log_level: str = "INFO"
    log_messages: bool = False  # put message text and user names in the turn log
    # Teams-grade AI replies: Teams' thumbs up / down under model replies, and the
    # prompt starters ("title|text;title|text", at most 10) for the welcome and the Teams app.
    feedback_buttons: bool = True
    prompt_starters: str = ""
    # Hardening. Host names (besides loopback and this server's own addresses) and
    # page origins the local Direct Line and anonymous /api/messages accept: for a reverse proxy.
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    # How often the bot checks its remote model server (BOTLOOM_MODEL_URL) for /healthz.
    model_probe_interval_s: float = 15.0

    # Knowledge: answers from the user's documents, with citations. BOTLOOM_KNOWLEDGE
    # lists files and folders indexed at start (incrementally); `botloom knowledge add` adds more.
    # The index lives in knowledge_store (sqlite:///… or postgresql://…); empty: beside the state
    # (the same SQLite file or PostgreSQL database; with Redis or memory state, data/knowledge.db).
    knowledge: tuple[str, ...] = ()
    knowledge_store: str = field(default="", metadata={"secret": "url"})
    embedding_model: str = "embedded"  # all-MiniLM-L6-v2 from its wheel; or a hub id / folder
    knowledge_min_score: float = 0.27  # cosine similarity a passage needs (calibrated: README)
    knowledge_lexical_min_score: float = 0.23  # ... when the words search found it too
    knowledge_sentence_min_score: float = 0.44  # or its best sentence's (calibrated: docs)
    # A passage is used at all only when its best sentence or its whole chunk is this close.
    knowledge_answered_min_score: float = 0.44
    knowledge_answered_chunk_score: float = 0.50
    knowledge_passages: int = 1  # passages in a prompt (the embedded model does best with one)
    knowledge_tokens: int = 600  # and at most this many prompt tokens for them
    # How an answer from documents is worded: "model" (the model's words, checked against the
    # passages), "quote" (the passages' own sentences about the question, cited) or "auto"
    # (quote with the embedded 135M default, which restates facts unreliably; model otherwise).
    knowledge_answer: str = "auto"
    knowledge_max_file_mb: float = 50.0  # larger files are skipped
    # Bounds on parsing one document (it runs in a worker process): a .docx whose parts unpack
    # to more MB than this is skipped, and a parse taking longer than this many seconds is
    # stopped (the worker is killed) and the file skipped. PDF streams keep pypdf's own limits.
    # The worker's address space in MB (Linux; 0: no cap): a file needing more is skipped.
    knowledge_max_unpacked_mb: float = 200.0
    knowledge_parse_timeout_s: float = 60.0
    knowledge_parse_memory_mb: float = 1024.0
    # Files attached in chat (docs/files.md): read within the bounds above, at most max_upload_mb
    # each, downloaded only from the serviceUrl's origin, https://*.sharepoint.com (Teams) or
    # allowed_file_urls; kept per conversation (bounded); files=false turns them off.
    files: bool = True
    max_upload_mb: float = 25.0
    allowed_file_urls: tuple[str, ...] = ()
    file_fetch_timeout_s: float = 30.0
    files_ttl_hours: float = 24.0
    files_per_conversation: int = 5
    files_max_chunks: int = 1000

    # User memory, summaries and reply endings: facts users state about themselves are kept per
    # user across their conversations (/memory, /forget, /remember); false keeps nothing.
    memory: bool = True
    reply_grace_tokens: int = 48  # tokens past max_new_tokens a reply may use to end its sentence
    memory_extraction: str = "rules"  # "model": also the model's structured extraction (big models)

    # Tools from MCP servers (issue 26, docs/tools.md): mcp_config, an mcpServers JSON file ("":
    # no tools); every call is one JSON line in tools_audit; an approval waits
    # tool_approval_expiry_s; the embedded model's tool is chosen above tool_threshold.
    # tool_calling "auto": a model that can call tools (its chat template takes them, or its
    # server answers tool_calls) chooses them itself; "meaning": always the router by meaning.
    mcp_config: str = ""
    tools_audit: str = "data/tools-audit.jsonl"
    tool_approval_expiry_s: float = 600.0
    tool_threshold: float = 0.37
    tool_turn_timeout_s: float = 45.0
    tool_calling: str = "auto"

    # CPU speed of the in-process engine: weights "auto" (fp16 for a float32 model where FBGEMM
    # runs, else bf16 on a CPU with native bfloat16, else int8), "fp16", "bf16", "int8" or
    # "float32"; the prefix cache's bound in MB (0: a sixteenth of the model's weights, at least
    # 32 MiB); torch threads on the CPU (0: every core the process is given).
    engine_weights: str = "auto"
    prefix_cache_mb: int = 0
    torch_threads: int = 0
    engine_int4_group: int = 32  # inputs per scale and zero point of "int4" (32, 64 or 128)
    # Observability (docs/observability.md): OTLP traces when either is set (the SDK reads the
    # other OTEL_* variables); GET /metrics behind this bearer token when set; daily token quota.
    traces: bool = False
    otel_endpoint: str = field(default="", metadata={"secret": "url"})
    metrics_token: str = field(default="", repr=False, metadata={"secret": "value"})
    tokens_per_user_per_day: int = 0  # 0: no quota

    def __repr__(self) -> str:
        """The settings, with passwords inside URLs masked and secret fields left out."""
        from bot.redaction import mask_url

        shown = []
        for f in fields(self):
            if f.repr:
                value = getattr(self, f.name)
                shown.append(f"{f.name}={mask_url(value) if isinstance(value, str) else value!r}")
        return f"Settings({', '.join(shown)})"

    def secret_values(self) -> list[str]:
        """Every credential these settings hold: the fields marked `secret` "value" whole, and
        the passwords and secret query parameters inside the fields marked `secret` "url" (as
        written and percent-decoded). A new credential setting is marked, never listed elsewhere.
        """
        from bot.redaction import url_secrets

        found: list[str] = []
        for f in fields(self):
            kind, value = f.metadata.get("secret"), getattr(self, f.name)
            if kind == "value" and value:
                found.append(value)
            elif kind == "url" and value:
                found += url_secrets(value)
        return found

    @property
    def anonymous(self) -> bool:
        """True when no app id is configured: no JWT checks (local development only)."""
        return not self.app_id

    def bot_framework_config(self) -> SimpleNamespace:
        """The attribute bag botbuilder's Configuration* classes read."""
        return SimpleNamespace(
            APP_ID=self.app_id,
            APP_PASSWORD=self.app_password,
            APP_TYPE=self.app_type,
            APP_TENANTID=self.app_tenant_id,
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
    ) -> Settings:
        """Build settings from `environ` (default: os.environ) over the values in `env_file`."""
        values: dict[str, str] = {}
        if env_file is not None and env_file.is_file():
            values.update(read_env_file(env_file))
        values.update(os.environ if environ is None else environ)
        return cls(**_parse(values))


_ENV_NAMES: dict[str, str] = {
    "app_id": "MicrosoftAppId",
    "app_password": "MicrosoftAppPassword",
    "app_type": "MicrosoftAppType",
    "app_tenant_id": "MicrosoftAppTenantId",
    "otel_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
}


def env_name(field_name: str) -> str:
    """The environment variable that sets `field_name`."""
    return _ENV_NAMES.get(field_name, "BOTLOOM_" + field_name.upper())


def known_env_names() -> frozenset[str]:
    """Every environment variable botloom reads (deploy-check refuses any other BOTLOOM_ or
    Microsoft name in the deployment files)."""
    return frozenset(env_name(f.name) for f in fields(Settings))


def _parse(values: Mapping[str, str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for f in fields(Settings):
        name = env_name(f.name)
        raw = values.get(name)
        if raw is None or (raw.strip() == "" and f.name not in _ENV_NAMES):
            continue
        parsed[f.name] = _convert(name, raw.strip(), f.type)
    app_type = parsed.get("app_type", "MultiTenant")
    canonical = {t.lower(): t for t in APP_TYPES}.get(str(app_type).lower())
    if canonical is None:
        raise SettingsError(f"MicrosoftAppType must be one of {', '.join(APP_TYPES)}")
    parsed["app_type"] = canonical
    if parsed.get("memory_extraction", "rules") not in ("rules", "model"):
        raise SettingsError("BOTLOOM_MEMORY_EXTRACTION must be rules or model")
    if parsed.get("knowledge_answer", "auto") not in ("auto", "model", "quote"):
        raise SettingsError("BOTLOOM_KNOWLEDGE_ANSWER must be auto, model or quote")
    if parsed.get("tool_calling", "auto") not in ("auto", "meaning"):
        raise SettingsError("BOTLOOM_TOOL_CALLING must be auto or meaning")
    if parsed.get("engine", "auto") not in ENGINES:
        raise SettingsError(f"BOTLOOM_ENGINE must be one of {', '.join(ENGINES)}")
    # CPU speed of the engine
    if parsed.get("engine_weights", "auto") not in ENGINE_WEIGHTS:
        raise SettingsError(f"BOTLOOM_ENGINE_WEIGHTS must be one of {', '.join(ENGINE_WEIGHTS)}")
    if parsed.get("engine_int4_group", 32) not in (32, 64, 128):
        raise SettingsError("BOTLOOM_ENGINE_INT4_GROUP must be 32, 64 or 128")
    for name in ("prefix_cache_mb", "torch_threads", "knowledge_parse_memory_mb"):
        if parsed.get(name, 0) < 0:
            raise SettingsError(f"{env_name(name)} must be 0 or more")
    for name in _POSITIVE:
        if not parsed.get(name, 1) > 0:  # NaN too
            raise SettingsError(f"{env_name(name)} must be more than 0")
    for name in ("port", "model_server_port"):
        if not 1 <= parsed.get(name, 1) <= 65535:
            raise SettingsError(f"{env_name(name)} must be a port number, 1 to 65535")
    servers = ("postgresql", "postgres", "redis", "rediss")  # where the namespace is used
    urls = (str(parsed.get("storage", "")), str(parsed.get("knowledge_store", "")))
    if "storage_namespace" in parsed and any(url.split(":", 1)[0] in servers for url in urls):
        from bot.storage.urls import check_namespace  # the rule the SQL and keys rely on

        try:
            check_namespace(parsed["storage_namespace"])
        except ValueError as error:
            raise SettingsError(f"BOTLOOM_STORAGE_NAMESPACE: {error}") from None
    level = str(parsed.get("log_level", "INFO")).upper()
    if level not in logging.getLevelNamesMapping():  # also WARN, FATAL, NOTSET
        raise SettingsError(f"BOTLOOM_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
    parsed["log_level"] = level
    return parsed


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Sizes, timeouts, leases and intervals where 0 (or less) means nothing sensible; a 0 body size
# would even lift the limit (aiohttp reads client_max_size=0 as "no limit").
_POSITIVE = (
    "max_body_bytes",
    "max_upload_mb",
    "knowledge_max_file_mb",
    "knowledge_max_unpacked_mb",
    "knowledge_parse_timeout_s",
    "lock_lease_s",
    "lock_wait_s",
    "turn_timeout_s",
    "generation_timeout_s",
    "model_connect_timeout_s",
    "model_read_timeout_s",
    "model_probe_interval_s",
    "file_fetch_timeout_s",
    "files_ttl_hours",
    "tool_approval_expiry_s",
    "tool_turn_timeout_s",
    "typing_interval_s",
    "stream_limit_teams_s",
    "storage_pool_size",
    "max_batch",
    "kv_block_size",
    "context_tokens",
    "max_new_tokens",
    "max_pending_requests",
    "max_queued_turns",
    "max_queued_turns_per_conversation",
)


def _convert(name: str, raw: str, annotation: Any) -> Any:
    kind = str(annotation)
    try:
        if kind == "bool":
            if raw.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes", "on")
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw).expanduser()
        if kind.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind}") from None
    return raw


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a .env file with python-dotenv's rules: `export` prefixes, single quotes (literal),
    double quotes (escapes such as \\n, and values over several lines), `#` comments (after a
    value, only when a space precedes them), and ${VAR} expansion. Keys without `=` are ignored."""
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}
