"""OpenTelemetry spans for sagas, steps and compensations (extra ``otel``).

Only the OpenTelemetry *API* is used: with no SDK configured every span is a
no-op; configure a ``TracerProvider`` (and any exporter) in your process and
the spans appear there. One span covers each stretch of work this process does
on a saga (``reversa.saga <workflow>``: a run, a recovery, a resolution), with
a child span per action attempt (``reversa.step <name>``) and per compensation
attempt (``reversa.compensate <name>``)::

    from reversa import Engine
    from reversa.observability.otel import TracingObserver

    engine = Engine(registry, store, observers=[TracingObserver()])

Attributes: on the saga span ``reversa.saga_id``, ``reversa.workflow`` and
``reversa.status``; on its children ``reversa.step``, ``reversa.attempt`` and
``reversa.outcome`` (the saga's id is their parent's: one attribute less per
step keeps the hot path cheaper). A failed attempt sets the span's status to
ERROR with the failure's message.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from ..core.observe import Observer

__all__ = ["TracingObserver"]


class TracingObserver(Observer):
    """Turns the engine's observer calls into OpenTelemetry spans.

    Args:
        tracer: The tracer to use (default: ``trace.get_tracer("reversa")`` from
            the global provider).
    """

    def __init__(self, tracer: Tracer | None = None) -> None:
        self._tracer = tracer or trace.get_tracer("reversa")
        # Each saga's span and the context its children start in (built once).
        self._sagas: dict[str, tuple[Span, Any]] = {}
        self._calls: dict[tuple[str, str, str], Span] = {}
        # The engine calls from its event loop; several engines may share one observer.
        self._lock = threading.Lock()

    def saga_started(self, saga_id: str, workflow: str, status: str) -> None:
        span = self._tracer.start_span(f"reversa.saga {workflow}", attributes={
            "reversa.saga_id": saga_id, "reversa.workflow": workflow,
            "reversa.status_before": status})
        context = trace.set_span_in_context(span)
        with self._lock:
            self._sagas[saga_id] = (span, context)

    def saga_finished(self, saga_id: str, workflow: str, status: str,
                      error: str | None) -> None:
        with self._lock:
            entry = self._sagas.pop(saga_id, None)
            # A call cut short by a signal (shutdown, lease lost) never finished.
            orphans = [k for k in self._calls if k[0] == saga_id]
            dangling = [self._calls.pop(k) for k in orphans]
        for child in dangling:
            child.set_status(Status(StatusCode.ERROR, "interrupted"))
            child.end()
        if entry is None:
            return
        span = entry[0]
        span.set_attribute("reversa.status", status)
        if status == "escalated":
            span.set_status(Status(StatusCode.ERROR, error or "escalated"))
        span.end()

    def step_started(self, saga_id: str, step: str, attempt: int) -> None:
        self._start(saga_id, step, attempt, "step")

    def step_finished(self, saga_id: str, step: str, attempt: int, outcome: str,
                      error: str | None) -> None:
        self._end(saga_id, step, "step", outcome, error)

    def compensation_started(self, saga_id: str, step: str, attempt: int) -> None:
        self._start(saga_id, step, attempt, "compensate")

    def compensation_finished(self, saga_id: str, step: str, attempt: int, outcome: str,
                              error: str | None) -> None:
        self._end(saga_id, step, "compensate", outcome, error)

    def _start(self, saga_id: str, step: str, attempt: int, kind: str) -> None:
        entry = self._sagas.get(saga_id)  # a dict read is atomic: no lock needed
        span = self._tracer.start_span(
            f"reversa.{kind} {step}", context=entry[1] if entry is not None else None,
            attributes={"reversa.step": step, "reversa.attempt": attempt})
        with self._lock:
            self._calls[(saga_id, step, kind)] = span

    def _end(self, saga_id: str, step: str, kind: str, outcome: str,
             error: str | None) -> None:
        with self._lock:
            span = self._calls.pop((saga_id, step, kind), None)
        if span is None:
            return
        span.set_attribute("reversa.outcome", outcome)
        if outcome != "ok":
            span.set_status(Status(StatusCode.ERROR, error or outcome))
        span.end()
