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
step). A failed attempt sets the span's status to ERROR with the failure's
message.

**Off the hot path.** Recording a span in the OpenTelemetry SDK costs about
30 µs of CPU (sampling, attribute cleaning, the processor's queue), some 15 % of
a step. By default (``deferred=True``) the engine's thread only appends what
happened and when (nanosecond timestamps taken at the moment) to a queue, and a
background thread builds the spans from it with those exact start and end times,
the same division of work as the SDK's ``BatchSpanProcessor``. Spans therefore
reach the SDK a moment after the work (at most ``flush_interval_s``; call
:meth:`TracingObserver.flush` to wait for them). ``deferred=False`` records
them on the engine's thread as it goes.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from ..core.observe import Observer

__all__ = ["TracingObserver"]

log = logging.getLogger(__name__)

# Record kinds in the queue (a tuple each; the first item says which).
_SAGA_START, _SAGA_END, _CALL_START, _CALL_END = range(4)
_WAKE_AT = 4096  # records waiting that wake the background thread before its interval


class TracingObserver(Observer):
    """Turns the engine's observer calls into OpenTelemetry spans.

    Args:
        tracer: The tracer to use (default: ``trace.get_tracer("reversa")`` from
            the global provider).
        deferred: Build the spans on a background thread from timestamps taken
            on the hot path (default), rather than on the engine's thread.
        flush_interval_s: How long a deferred span waits at most before the
            background thread hands it to the SDK.
        max_queue: Records held for the background thread at most; beyond it
            records are dropped (and counted in :attr:`dropped`) rather than let
            a stalled exporter grow the engine's memory.
    """

    def __init__(self, tracer: Tracer | None = None, *, deferred: bool = True,
                 flush_interval_s: float = 0.2, max_queue: int = 100_000) -> None:
        self._tracer = tracer or trace.get_tracer("reversa")
        self._deferred = deferred
        self._interval = flush_interval_s
        self._max_queue = max_queue
        self._queue: deque[tuple[Any, ...]] = deque()
        # Only the drainer touches these: each saga's span and its children's context,
        # and the calls started but not yet finished.
        self._sagas: dict[str, tuple[Span, Any]] = {}
        self._calls: dict[tuple[str, str, str], tuple[int, int]] = {}
        self._drain_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.dropped = 0
        """Records dropped because the queue was full (deferred mode)."""

    # -- the observer hooks (the engine's thread: only an append each) -------------------
    def saga_started(self, saga_id: str, workflow: str, status: str) -> None:
        self._put((_SAGA_START, saga_id, workflow, status, time.time_ns()))

    def saga_finished(self, saga_id: str, workflow: str, status: str,
                      error: str | None) -> None:
        self._put((_SAGA_END, saga_id, status, error, time.time_ns()))

    def step_started(self, saga_id: str, step: str, attempt: int) -> None:
        self._put((_CALL_START, saga_id, step, "step", attempt, time.time_ns()))

    def step_finished(self, saga_id: str, step: str, attempt: int, outcome: str,
                      error: str | None) -> None:
        self._put((_CALL_END, saga_id, step, "step", outcome, error, time.time_ns()))

    def compensation_started(self, saga_id: str, step: str, attempt: int) -> None:
        self._put((_CALL_START, saga_id, step, "compensate", attempt, time.time_ns()))

    def compensation_finished(self, saga_id: str, step: str, attempt: int, outcome: str,
                              error: str | None) -> None:
        self._put((_CALL_END, saga_id, step, "compensate", outcome, error, time.time_ns()))

    # -- delivery --------------------------------------------------------------------------
    def flush(self) -> None:
        """Hand every span recorded so far to the SDK before returning."""
        with self._drain_lock:
            self._drain()

    def close(self) -> None:
        """Flush, and stop the background thread."""
        thread, self._thread = self._thread, None
        self._deferred = False  # later records are applied at once
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        self.flush()

    def _put(self, record: tuple[Any, ...]) -> None:
        if not self._deferred:
            with self._drain_lock:
                self._drain()
                self._apply(record)
            return
        waiting = len(self._queue)
        if waiting >= self._max_queue:
            self.dropped += 1
            return
        self._queue.append(record)
        if self._thread is None:
            self._start()
        elif waiting == _WAKE_AT:
            self._wake.set()  # a burst: do not let it wait for the interval

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None or not self._deferred:
                return
            thread = threading.Thread(target=self._loop, name="reversa-otel", daemon=True)
            self._thread = thread
            thread.start()
            atexit.register(self.flush)  # a short-lived process still gets its spans

    def _loop(self) -> None:
        while self._thread is threading.current_thread():
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._drain_lock:
                self._drain()

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            record = queue.popleft()
            try:
                self._apply(record)
            except Exception:  # a tracing bug must never disturb the engine or stop the others
                log.warning("span not recorded", exc_info=True)

    def _apply(self, record: tuple[Any, ...]) -> None:
        kind = record[0]
        if kind == _CALL_START:
            _, saga_id, step, what, attempt, at = record
            self._calls[(saga_id, step, what)] = (attempt, at)
        elif kind == _CALL_END:
            _, saga_id, step, what, outcome, error, at = record
            started = self._calls.pop((saga_id, step, what), None)
            if started is not None:
                self._call_span(saga_id, step, what, started, outcome, error, at)
        elif kind == _SAGA_START:
            _, saga_id, workflow, status, at = record
            span = self._tracer.start_span(f"reversa.saga {workflow}", attributes={
                "reversa.saga_id": saga_id, "reversa.workflow": workflow,
                "reversa.status_before": status}, start_time=at)
            self._sagas[saga_id] = (span, trace.set_span_in_context(span))
        else:
            _, saga_id, status, error, at = record
            # A call cut short by a signal (shutdown, lease lost) never finished.
            for key in [k for k in self._calls if k[0] == saga_id]:
                started = self._calls.pop(key)
                self._call_span(saga_id, key[1], key[2], started, "interrupted",
                                "interrupted", at)
            entry = self._sagas.pop(saga_id, None)
            if entry is None:
                return
            span = entry[0]
            span.set_attribute("reversa.status", status)
            if status == "escalated":
                span.set_status(Status(StatusCode.ERROR, error or "escalated"))
            span.end(end_time=at)

    def _call_span(self, saga_id: str, step: str, what: str, started: tuple[int, int],
                   outcome: str, error: str | None, at: int) -> None:
        attempt, start = started
        entry = self._sagas.get(saga_id)
        span = self._tracer.start_span(
            f"reversa.{what} {step}", context=entry[1] if entry is not None else None,
            attributes={"reversa.step": step, "reversa.attempt": attempt,
                        "reversa.outcome": outcome}, start_time=start)
        if outcome != "ok":
            span.set_status(Status(StatusCode.ERROR, error or outcome))
        span.end(end_time=at)
