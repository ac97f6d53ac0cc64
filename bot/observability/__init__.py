"""Traces (OpenTelemetry), metrics (Prometheus), token usage and quotas: docs/observability.md."""

from bot.observability.setup import Telemetry
from bot.observability.usage import UsageStore

__all__ = ["Telemetry", "UsageStore"]
