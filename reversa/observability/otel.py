"""OpenTelemetry spans for sagas, steps and compensations (extra ``otel``).

By default only the OpenTelemetry *API* is used: with no SDK configured every
span is a no-op; configure a ``TracerProvider`` (and any exporter) in your
process and the spans appear there. One span covers each stretch of work this process does
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

**Straight to a span processor.** The spans are finished when they are built (their
times are known), so the tracer's live-span machinery is work for nothing: given
``processor=`` (any SDK ``SpanProcessor``: a ``BatchSpanProcessor`` with your
exporter, say), the observer builds each span as the SDK's finished-span type
(``ReadableSpan``) and hands it to the processor's ``on_end``, about a seventh of
the tracer's CPU per span (``docs/performance.md``). Same names, attributes,
parents, times and statuses; trace and span ids from the SDK's random generator;
a ``sampler`` is asked once per saga and its children follow (as the SDK's
default ``ParentBased`` sampler does); ``on_start`` is not called, as no span is
ever live. This needs ``opentelemetry-sdk``::

    provider = TracerProvider()
    processor = BatchSpanProcessor(OTLPSpanExporter())
    provider.add_span_processor(processor)  # the application's other spans
    observer = TracingObserver(processor=processor, resource=provider.resource)
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import (
    Span,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TraceState,
)

from ..core.observe import Observer

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.sampling import Sampler

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
        processor: Hand finished spans straight to this SDK span processor
            instead of going through a tracer (see the module's docs); not with
            ``tracer``.
        resource: The resource of those spans (with ``processor``; default: the
            SDK's ``Resource.create()``, which reads ``OTEL_SERVICE_NAME`` and
            ``OTEL_RESOURCE_ATTRIBUTES``).
        sampler: Asked once per saga whether to record it (with ``processor``;
            default: record every saga).
        deferred: Build the spans on a background thread from timestamps taken
            on the hot path (default), rather than on the engine's thread.
        flush_interval_s: How long a deferred span waits at most before the
            background thread hands it to the SDK.
        max_queue: Records held for the background thread at most; beyond it
            records are dropped (and counted in :attr:`dropped`) rather than let
            a stalled exporter grow the engine's memory.
    """

    def __init__(self, tracer: Tracer | None = None, *,
                 processor: SpanProcessor | None = None, resource: Resource | None = None,
                 sampler: Sampler | None = None, deferred: bool = True,
                 flush_interval_s: float = 0.2, max_queue: int = 100_000) -> None:
        if processor is not None and tracer is not None:
            raise ValueError("TracingObserver: give a tracer or a processor, not both")
        if processor is None and (resource is not None or sampler is not None):
            raise ValueError("TracingObserver: resource= and sampler= go with processor=; "
                             "a tracer takes them from its provider")
        self._spans: _Spans = (_TracerSpans(tracer or trace.get_tracer("reversa"))
                               if processor is None else
                               _ProcessorSpans(processor, resource, sampler))
        self._deferred = deferred
        self._interval = flush_interval_s
        self._max_queue = max_queue
        self._queue: deque[tuple[Any, ...]] = deque()
        # Only the drainer touches these: each saga's span and its children's context,
        # and the calls started but not yet finished.
        self._sagas: dict[str, Any] = {}
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
            self._sagas[saga_id] = self._spans.open_saga(
                f"reversa.saga {workflow}", {"reversa.saga_id": saga_id,
                                             "reversa.workflow": workflow,
                                             "reversa.status_before": status}, at)
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
            self._spans.close_saga(entry, status, Status(StatusCode.ERROR, error or "escalated")
                                   if status == "escalated" else None, at)

    def _call_span(self, saga_id: str, step: str, what: str, started: tuple[int, int],
                   outcome: str, error: str | None, at: int) -> None:
        attempt, start = started
        self._spans.call(self._sagas.get(saga_id), f"reversa.{what} {step}",
                         {"reversa.step": step, "reversa.attempt": attempt,
                          "reversa.outcome": outcome},
                         None if outcome == "ok" else Status(StatusCode.ERROR, error or outcome),
                         start, at)


class _Spans(Protocol):
    """How finished work becomes spans: through a tracer, or straight to a processor."""

    def open_saga(self, name: str, attributes: dict[str, Any], start: int) -> Any:
        """Begin a saga's span; returns the handle its children and its end take."""

    def close_saga(self, saga: Any, status: str, error: Status | None, end: int) -> None:
        """End a saga's span with its final status."""

    def call(self, saga: Any, name: str, attributes: dict[str, Any], error: Status | None,
             start: int, end: int) -> None:
        """Record one finished attempt's span (a child of ``saga`` unless it is None)."""


class _TracerSpans:
    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def open_saga(self, name: str, attributes: dict[str, Any], start: int) -> Any:
        span = self.tracer.start_span(name, attributes=attributes, start_time=start)
        return span, trace.set_span_in_context(span)

    def close_saga(self, saga: Any, status: str, error: Status | None, end: int) -> None:
        span: Span = saga[0]
        span.set_attribute("reversa.status", status)
        if error is not None:
            span.set_status(error)
        span.end(end_time=end)

    def call(self, saga: Any, name: str, attributes: dict[str, Any], error: Status | None,
             start: int, end: int) -> None:
        span = self.tracer.start_span(name, context=saga[1] if saga is not None else None,
                                      attributes=attributes, start_time=start)
        if error is not None:
            span.set_status(error)
        span.end(end_time=end)


class _ProcessorSpans:
    """Finished spans built as the SDK's ``ReadableSpan`` and handed to ``on_end``."""

    def __init__(self, processor: SpanProcessor, resource: Resource | None,
                 sampler: Sampler | None) -> None:
        # The SDK only where it is asked for: the ``otel`` extra is the API alone.
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.trace.sampling import Decision
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.processor = processor
        self.resource = resource if resource is not None else Resource.create()
        self.sampler = sampler
        self.ids = RandomIdGenerator()
        self.scope = InstrumentationScope("reversa")
        self.readable = ReadableSpan
        self.sample = Decision.RECORD_AND_SAMPLE
        self.flags = TraceFlags(TraceFlags.SAMPLED)
        self.unset = Status(StatusCode.UNSET)

    def open_saga(self, name: str, attributes: dict[str, Any], start: int) -> Any:
        trace_id = self.ids.generate_trace_id()
        state = TraceState()
        if self.sampler is not None:
            decision = self.sampler.should_sample(None, trace_id, name, attributes=attributes)
            # RECORD_ONLY spans would only reach live-span consumers, and these spans
            # are never live: only a sampled saga is recorded.
            if decision.decision is not self.sample:
                return None  # this saga and its children are not recorded
            attributes = {**attributes, **dict(decision.attributes or {})}
            state = decision.trace_state or state
        context = SpanContext(trace_id, self.ids.generate_span_id(), False, self.flags, state)
        return (name, context, attributes, start)

    def close_saga(self, saga: Any, status: str, error: Status | None, end: int) -> None:
        name, context, attributes, start = saga
        self._emit(name, context, None, {**attributes, "reversa.status": status}, error, start,
                   end)

    def call(self, saga: Any, name: str, attributes: dict[str, Any], error: Status | None,
             start: int, end: int) -> None:
        if saga is None:
            if self.sampler is not None:
                return  # an attempt of an unsampled saga (or of one never seen started)
            context = SpanContext(self.ids.generate_trace_id(), self.ids.generate_span_id(),
                                  False, self.flags)
            self._emit(name, context, None, attributes, error, start, end)
            return
        parent: SpanContext = saga[1]
        context = SpanContext(parent.trace_id, self.ids.generate_span_id(), False, self.flags,
                              parent.trace_state)
        self._emit(name, context, parent, attributes, error, start, end)

    def _emit(self, name: str, context: SpanContext, parent: SpanContext | None,
              attributes: dict[str, Any], error: Status | None, start: int, end: int) -> None:
        self.processor.on_end(self.readable(
            name, context, parent, self.resource, attributes,
            status=error if error is not None else self.unset,
            start_time=start, end_time=end, instrumentation_scope=self.scope))
