"""Observability add-ons: OpenTelemetry spans (extra ``otel``) and Prometheus metrics
(extra ``metrics``). Import the submodule you need; neither is imported by the core."""
