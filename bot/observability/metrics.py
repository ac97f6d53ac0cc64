"""The bot's Prometheus metrics, in one registry per app (never prometheus-client's default).

Names follow Prometheus' conventions (`_total` on counters, `_seconds` on durations). Labels stay
few and bounded: channel, outcome, model, tenant (Teams' tenant id where the channel gives one),
HTTP status, reaction.

Tool calls and approvals (bot/tools/) count themselves here: the tool stage gets this object's
`tool_calls` and `tool_approvals` and calls, for example,
``metrics.tool_calls.labels(tool="search", outcome="ok").inc()`` and
``metrics.tool_approvals.labels(decision="approved").inc()`` (outcome: ok, error, refused;
decision: approved, denied, expired).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from models.serving.telemetry import LATENCY_BUCKETS, EngineCollector

FEEDBACK_REACTIONS = frozenset({"like", "dislike", "great", "ok", "poor"})  # Teams; /feedback
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)


class BotMetrics:
    """Every metric the bot exposes on GET /metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = self.registry = registry
        self.engine = EngineCollector()  # the in-process engine's load, once it has loaded
        r.register(self.engine)
        self.turns = Counter(
            "botloom_turns",
            "Turns run, by channel and outcome.",
            ["channel", "outcome"],
            registry=r,
        )
        self.turn_duration = Histogram(
            "botloom_turn_duration_seconds",
            "From the message's acknowledgement (202) to the end of its turn.",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "botloom_time_to_first_token_seconds",
            "From the model request to the reply's first piece.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inbox_depth = Gauge(
            "botloom_inbox_depth", "Turns acknowledged here and not yet run.", registry=r
        )
        self.inbox_oldest_age = Gauge(
            "botloom_inbox_oldest_age_seconds",
            "Age of the oldest turn acknowledged here and not yet started.",
            registry=r,
        )
        self.inbox_wait = Histogram(
            "botloom_inbox_wait_seconds",
            "From acknowledgement to the turn's start.",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.lock_wait = Histogram(
            "botloom_lock_wait_seconds",
            "Waiting for a conversation's lock.",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.lock_timeouts = Counter(
            "botloom_lock_timeouts", "Conversation locks not obtained in time.", registry=r
        )
        self.input_tokens = Counter(
            "botloom_input_tokens",
            "Prompt tokens sent to the model.",
            ["model", "tenant"],
            registry=r,
        )
        self.output_tokens = Counter(
            "botloom_output_tokens",
            "Reply tokens from the model.",
            ["model", "tenant"],
            registry=r,
        )
        self.connector_requests = Counter(
            "botloom_connector_requests",
            "HTTP requests to the channel's connector by status (each retry counted; 'error': "
            "no answer).",
            ["status"],
            registry=r,
        )
        self.connector_retries = Counter(
            "botloom_connector_retries", "Connector requests that were retries.", registry=r
        )
        self.connector_duration = Histogram(
            "botloom_connector_request_duration_seconds",
            "One connector request.",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.knowledge_hits = Counter(
            "botloom_knowledge_hits", "Answers given with knowledge passages.", registry=r
        )
        self.knowledge_passages = Counter(
            "botloom_knowledge_passages", "Knowledge passages put in prompts.", registry=r
        )
        self.citations = Counter(
            "botloom_citations", "Citations in replies (passages a reply used).", registry=r
        )
        self.feedback = Counter(
            "botloom_feedback_reactions",
            "Feedback by reaction (like, dislike, a rating).",
            ["reaction"],
            registry=r,
        )
        self.quota_refusals = Counter(
            "botloom_quota_refusals", "Messages refused for the daily token quota.", registry=r
        )
        self.tool_calls = Counter(
            "botloom_tool_calls",
            "Tool calls by tool and outcome (bot/tools/).",
            ["tool", "outcome"],
            registry=r,
        )
        self.tool_approvals = Counter(
            "botloom_tool_approvals",
            "Tool approvals by decision (bot/tools/).",
            ["decision"],
            registry=r,
        )

    def count_feedback(self, reaction: str) -> None:
        """One feedback reaction (like, dislike, a /feedback rating); anything else is "other"."""
        known = reaction if reaction in FEEDBACK_REACTIONS else "other"
        self.feedback.labels(known).inc()
