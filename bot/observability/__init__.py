"""Traces (OpenTelemetry), metrics (Prometheus), token usage and quotas: docs/observability.md."""

from bot.observability.setup import Telemetry

__all__ = ["Telemetry"]
