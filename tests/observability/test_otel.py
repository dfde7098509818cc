"""Spans per saga, step and compensation through the observer hook."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from reversa import Engine, FakeClock, Observer, SagaStatus, Store, TransientError
from reversa.observability.otel import TracingObserver
from tests.core.kit import World, chain_saga, reject, transfer_registry


class _Tracer:
    """The SDK's tracer, noting the thread of every span it starts (and failing on demand)."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.threads: set[int] = set()
        self.fail_next = 0

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        self.threads.add(threading.get_ident())
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("tracer bug")
        return self.tracer.start_span(*args, **kwargs)


def _traced(store: Store, world: World, **options: Any
            ) -> tuple[Engine, InMemorySpanExporter, TracingObserver, _Tracer]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = _Tracer(provider.get_tracer("test"))
    observer = TracingObserver(tracer, **options)  # type: ignore[arg-type]
    engine = Engine(transfer_registry(world), store, clock=FakeClock(), heartbeat=False,
                    observers=[observer])
    return engine, exporter, observer, tracer


@pytest.mark.parametrize("deferred", [True, False], ids=["deferred", "inline"])
def test_spans_for_a_rolled_back_saga(store: Store, deferred: bool) -> None:
    world = World()
    world.fail["do:credit"] = reject("no such account")
    world.fail["undo:convert"] = [TransientError("busy")]
    engine, exporter, observer, _ = _traced(store, world, deferred=deferred)
    result = engine.run(chain_saga())
    assert result.status is SagaStatus.COMPENSATED
    if deferred:
        observer.flush()
    spans = exporter.get_finished_spans()
    names = [s.name for s in spans]
    assert names.count("reversa.saga transfer") == 1
    assert [n for n in names if n.startswith("reversa.step")] == [
        "reversa.step debit", "reversa.step convert", "reversa.step credit"]
    assert names.count("reversa.compensate convert") == 2  # one failed attempt, one ok
    (saga,) = [s for s in spans if s.name == "reversa.saga transfer"]
    assert saga.attributes is not None and saga.attributes["reversa.status"] == "compensated"
    for child in spans:
        if child is not saga:
            assert child.parent is not None and child.parent.span_id == saga.context.span_id
            assert child.context.trace_id == saga.context.trace_id
    (credit,) = [s for s in spans if s.name == "reversa.step credit"]
    assert credit.status.status_code is StatusCode.ERROR
    assert "no such account" in (credit.status.description or "")
    failed, ok = [s for s in spans if s.name == "reversa.compensate convert"]
    assert failed.status.status_code is StatusCode.ERROR and ok.attributes is not None
    assert ok.attributes["reversa.outcome"] == "ok"


def test_a_failing_observer_never_disturbs_a_saga(store: Store) -> None:
    class Broken(Observer):
        def step_started(self, saga_id: str, step: str, attempt: int) -> None:
            raise RuntimeError("observer bug")

    seen: list[Any] = []

    class Counting(Observer):
        def step_finished(self, *args: Any) -> None:
            seen.append(args)

    world = World()
    engine = Engine(transfer_registry(world), store, clock=FakeClock(), heartbeat=False,
                    observers=[Broken(), Counting()])
    assert engine.run(chain_saga()).status is SagaStatus.COMPLETED
    assert [a[1] for a in seen] == ["debit", "convert", "credit"]


def test_deferred_spans_are_built_off_the_engine_thread_with_the_hot_path_times(
        store: Store) -> None:
    world = World()
    world.fail["do:credit"] = reject("no such account")
    engine, exporter, observer, tracer = _traced(store, world, flush_interval_s=0.05)
    before = time.time_ns()
    assert engine.run(chain_saga()).status is SagaStatus.COMPENSATED
    after = time.time_ns()
    deadline = time.monotonic() + 10
    while len(exporter.get_finished_spans()) < 6:  # saga, 3 steps, 2 compensations
        assert time.monotonic() < deadline, "the background thread delivered nothing"
        time.sleep(0.02)
    # The engine's thread never entered the SDK: the background thread did.
    assert tracer.threads and threading.get_ident() not in tracer.threads
    spans = exporter.get_finished_spans()
    (saga,) = [s for s in spans if s.name == "reversa.saga transfer"]
    children = sorted((s for s in spans if s is not saga), key=lambda s: s.start_time or 0)
    # The times are those of the work, not of the delivery: nested in the saga's, in order.
    assert saga.start_time is not None and saga.end_time is not None
    assert before <= saga.start_time <= saga.end_time <= after
    for child in children:
        assert child.start_time is not None and child.end_time is not None
        assert saga.start_time <= child.start_time <= child.end_time <= saga.end_time
    assert [s.name for s in children] == [
        "reversa.step debit", "reversa.step convert", "reversa.step credit",
        "reversa.compensate convert", "reversa.compensate debit"]
    observer.close()


def test_a_tracer_failure_loses_one_span_and_never_the_saga(store: Store) -> None:
    engine, exporter, observer, tracer = _traced(store, World())
    tracer.fail_next = 1  # the saga span: its children then have no parent
    assert engine.run(chain_saga()).status is SagaStatus.COMPLETED
    assert engine.run(chain_saga()).status is SagaStatus.COMPLETED
    observer.flush()
    names = [s.name for s in exporter.get_finished_spans()]
    assert names.count("reversa.saga transfer") == 1  # the second saga's
    assert names.count("reversa.step debit") == 2


def test_a_full_queue_drops_and_counts_instead_of_growing(store: Store) -> None:
    engine, exporter, observer, _ = _traced(store, World(), max_queue=3,
                                            flush_interval_s=3600)
    observer.flush()  # nothing yet; the thread starts at the first record and then sleeps
    assert engine.run(chain_saga()).status is SagaStatus.COMPLETED
    assert observer.dropped > 0
    observer.close()
    assert len(exporter.get_finished_spans()) < 4


# -- straight to a span processor ------------------------------------------------------------


def _shape(spans: Any) -> list[tuple[Any, ...]]:
    """What a reader of the trace sees, ids and times aside: names, parents, attributes."""
    by_id = {s.context.span_id: s.name for s in spans}
    return sorted((s.name, by_id.get(s.parent.span_id) if s.parent is not None else None,
                   tuple(sorted((k, v) for k, v in (s.attributes or {}).items()
                                if k != "reversa.saga_id")),
                   s.status.status_code, s.status.description, s.kind) for s in spans)


def _failing_world() -> World:
    world = World()
    world.fail["do:credit"] = reject("no such account")
    world.fail["undo:convert"] = [TransientError("busy")]
    return world


def _direct(store: Store, world: World, **options: Any
            ) -> tuple[Engine, InMemorySpanExporter, TracingObserver]:
    exporter = InMemorySpanExporter()
    observer = TracingObserver(processor=SimpleSpanProcessor(exporter), **options)
    engine = Engine(transfer_registry(world), store, clock=FakeClock(), heartbeat=False,
                    observers=[observer])
    return engine, exporter, observer


@pytest.mark.parametrize("deferred", [True, False], ids=["deferred", "inline"])
def test_a_processor_gets_the_spans_a_tracer_would_record(
        store: Store, deferred: bool) -> None:
    through_tracer, by_tracer, tracing, _ = _traced(store, _failing_world(), deferred=deferred)
    resource = TracerProvider().resource
    straight, exporter, direct = _direct(store, _failing_world(), resource=resource,
                                         deferred=deferred)
    assert through_tracer.run(chain_saga()).status is SagaStatus.COMPENSATED
    before = time.time_ns()
    assert straight.run(chain_saga()).status is SagaStatus.COMPENSATED
    after = time.time_ns()
    tracing.close()
    direct.close()
    spans = exporter.get_finished_spans()
    assert len(spans) == 7  # the saga, 3 steps, 3 compensation attempts (one failed)
    assert _shape(spans) == _shape(by_tracer.get_finished_spans())
    (saga,) = [s for s in spans if s.parent is None]
    assert saga.attributes is not None and saga.attributes["reversa.saga_id"]
    assert saga.resource is resource
    assert saga.instrumentation_scope is not None
    assert saga.instrumentation_scope.name == "reversa"
    assert saga.start_time is not None and saga.end_time is not None
    assert before <= saga.start_time <= saga.end_time <= after
    for span in spans:
        assert span.context.trace_id == saga.context.trace_id
        assert span.context.trace_flags.sampled
        assert span.start_time is not None and span.end_time is not None
        assert saga.start_time <= span.start_time <= span.end_time <= saga.end_time
    assert len({s.context.span_id for s in spans}) == 7


def test_a_sampler_is_asked_once_per_saga_and_its_children_follow(store: Store) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Decision, Sampler, SamplingResult

    class EverySecond(Sampler):
        def __init__(self) -> None:
            self.asked: list[str] = []

        def should_sample(self, parent_context: Any, trace_id: int, name: str,
                          kind: Any = None, attributes: Any = None, links: Any = None,
                          trace_state: Any = None) -> SamplingResult:
            self.asked.append(name)
            keep = len(self.asked) % 2 == 0
            return SamplingResult(Decision.RECORD_AND_SAMPLE if keep else Decision.DROP,
                                  {"sampled.by": "test"} if keep else None)

        def get_description(self) -> str:
            return "every second saga"

    sampler = EverySecond()
    engine, exporter, observer = _direct(store, _failing_world(), sampler=sampler)
    for _ in range(2):
        engine.run(chain_saga())
    observer.close()
    assert sampler.asked == ["reversa.saga transfer"] * 2  # never per step
    spans = exporter.get_finished_spans()
    # Only the second saga's: itself, 3 steps, 2 compensations (the first saga spent the
    # world's one transient compensation failure).
    assert len(spans) == 6
    assert len({s.context.trace_id for s in spans}) == 1
    (saga,) = [s for s in spans if s.parent is None]
    assert saga.attributes is not None and saga.attributes["sampled.by"] == "test"

    engine, exporter, observer = _direct(store, World(), sampler=ALWAYS_OFF)
    assert engine.run(chain_saga()).status is SagaStatus.COMPLETED
    observer.close()
    assert exporter.get_finished_spans() == ()


def test_a_processor_failure_loses_spans_and_never_the_saga(store: Store) -> None:
    class Broken(SimpleSpanProcessor):
        def on_end(self, span: Any) -> None:
            raise RuntimeError("processor bug")

    observer = TracingObserver(processor=Broken(InMemorySpanExporter()), deferred=False)
    engine = Engine(transfer_registry(World()), store, clock=FakeClock(), heartbeat=False,
                    observers=[observer])
    assert engine.run(chain_saga()).status is SagaStatus.COMPLETED


def test_the_processor_options_are_refused_in_one_line_when_they_cannot_apply() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    with pytest.raises(ValueError, match="a tracer or a processor, not both"):
        TracingObserver(provider.get_tracer("t"), processor=SimpleSpanProcessor(exporter))
    with pytest.raises(ValueError, match="go with processor="):
        TracingObserver(resource=provider.resource)
