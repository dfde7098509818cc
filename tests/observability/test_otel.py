"""Spans per saga, step and compensation through the observer hook."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from reversa import Engine, FakeClock, Observer, SagaStatus, Store, TransientError
from reversa.observability.otel import TracingObserver
from tests.core.kit import World, chain_saga, reject, transfer_registry


def _traced(store: Store, world: World) -> tuple[Engine, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = TracingObserver(provider.get_tracer("test"))
    engine = Engine(transfer_registry(world), store, clock=FakeClock(), heartbeat=False,
                    observers=[observer])
    return engine, exporter


def test_spans_for_a_rolled_back_saga(store: Store) -> None:
    world = World()
    world.fail["do:credit"] = reject("no such account")
    world.fail["undo:convert"] = [TransientError("busy")]
    engine, exporter = _traced(store, world)
    result = engine.run(chain_saga())
    assert result.status is SagaStatus.COMPENSATED
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
