"""The benchmark workload: N sagas of K no-op steps, the last one failing.

Each saga runs K actions and K-1 compensations, so it exercises both the
forward and the rollback hot paths with every write durable. The same
workload is run as a plain in-process loop with no durability to show the
overhead ratio.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.context import SnapshotContext, StepContext
from ..core.engine import Engine
from ..core.errors import PermanentError
from ..core.model import Retry, Saga, Step
from ..core.observe import Observer
from ..core.registry import Registry
from ..core.states import SagaStatus
from ..core.store import Store

__all__ = ["BenchResult", "bench_registry", "bench_saga", "expected_status", "plain_loop",
           "run_durable"]


@dataclass
class Marks:
    """Timestamps of every step execution, per saga, to derive per-step latency."""

    times: dict[str, list[float]] = field(default_factory=dict)

    def mark(self, saga_id: str) -> None:
        """Record that a step of ``saga_id`` is executing now."""
        self.times.setdefault(saga_id, []).append(time.perf_counter())


def bench_registry(marks: Marks | None = None) -> Registry:
    """No-op handlers; the last step's action fails."""
    reg = Registry()

    @reg.action("bench.noop")
    def noop(ctx: StepContext) -> None:
        if marks is not None:
            marks.mark(ctx.saga_id)

    @reg.action("bench.fail")
    def fail(ctx: StepContext) -> None:
        if marks is not None:
            marks.mark(ctx.saga_id)
        raise PermanentError("bench: the last step fails by design")

    @reg.compensation("bench.undo")
    def undo(ctx: StepContext) -> None:
        if marks is not None:
            marks.mark(ctx.saga_id)

    @reg.snapshot("bench.state")
    def state(ctx: SnapshotContext) -> dict[str, Any]:
        return {}

    return reg


def bench_saga(steps: int, fail_last: bool) -> Saga:
    """A chain of ``steps`` no-op steps, the last failing if ``fail_last``."""
    once = Retry(max_attempts=1)
    chain = [Step(name=f"s{i}", action="bench.noop", compensation="bench.undo", retry=once)
             for i in range(steps)]
    if fail_last:
        chain[-1] = chain[-1].model_copy(update={"action": "bench.fail"})
    return Saga.chain("bench", chain, snapshot="bench.state", app="reversa.benchkit.workload:"
                      "bench_registry")


def expected_status(steps: int, fail_last: bool) -> SagaStatus:
    """How every bench saga must end.

    With one step that fails there is nothing to compensate: the saga ends
    ``failed`` (consistent, nothing changed) after one action and no compensation.
    """
    if not fail_last:
        return SagaStatus.COMPLETED
    return SagaStatus.COMPENSATED if steps > 1 else SagaStatus.FAILED


@dataclass
class BenchResult:
    """Figures of one durable run."""

    sagas: int
    steps: int
    elapsed_s: float
    step_ms: list[float]
    cpu_s: float | None = None
    """Process CPU time of the run (every thread): the figure a loaded machine disturbs least."""

    def summary(self) -> dict[str, float]:
        """Throughput, and per-step latency percentiles when a saga ran two calls or more.

        Latency is the gap between consecutive calls of one saga, so a one-step
        saga has none to report (rather than a made-up zero).
        """
        out = {"sagas_per_s": self.sagas / self.elapsed_s,
               "steps_per_s": self.steps / self.elapsed_s, "elapsed_s": self.elapsed_s}
        if self.cpu_s is not None:
            out["cpu_us_per_step"] = self.cpu_s / self.steps * 1e6
        ms = sorted(self.step_ms)
        if ms:
            out["p50_step_ms"] = statistics.median(ms)
            out["p99_step_ms"] = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        return out


def run_durable(
    store: Store, sagas: int, steps: int, fail_last: bool, concurrency: int = 1,
    on_saga: Callable[[], None] | None = None, observers: Sequence[Observer] = (),
    finish: Callable[[], None] | None = None,
) -> BenchResult:
    """Run the workload through the engine; ``concurrency`` sagas in flight.

    Args:
        store: Where the sagas are recorded.
        sagas: How many sagas to run (at least 1).
        steps: Steps per saga (at least 1).
        fail_last: Whether the last step fails (so K-1 compensations run).
        concurrency: Sagas in flight at once.
        on_saga: Called after each saga ends (progress display).
        observers: Engine observers (the tracing bench passes a tracer).
        finish: Called once the last saga ended, inside the timed run (closing a
            tracing observer, so the spans it still builds are on the clock).
    """
    if sagas < 1 or steps < 1 or concurrency < 1:
        raise ValueError(f"sagas={sagas}, steps={steps}, concurrency={concurrency}: "
                         "each must be at least 1")
    marks = Marks()
    engine = Engine(bench_registry(marks), store, heartbeat=False, observers=observers)
    saga = bench_saga(steps, fail_last)
    expected = expected_status(steps, fail_last)

    async def one() -> None:
        result = await engine.run_async(saga)
        if result.status is not expected:
            raise RuntimeError(f"bench saga ended {result.status}, expected {expected}")
        if on_saga is not None:
            on_saga()

    async def many() -> None:
        remaining = sagas
        while remaining:
            batch = min(concurrency, remaining)
            await asyncio.gather(*(one() for _ in range(batch)))
            remaining -= batch

    start, cpu = time.perf_counter(), time.process_time()
    try:
        if concurrency <= 1:
            for _ in range(sagas):
                engine._sync(one())
        else:
            engine._sync(many())
        if finish is not None:
            finish()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        engine.close()
    per_saga = steps + (steps - 1 if fail_last else 0)
    gaps = [(b - a) * 1000 for ts in marks.times.values() for a, b in itertools.pairwise(ts)]
    return BenchResult(sagas, sagas * per_saga, elapsed, gaps, cpu)


def plain_loop(sagas: int, steps: int, fail_last: bool) -> dict[str, float]:
    """The same calls in a plain loop: no durability, no engine."""
    reg = bench_registry()
    noop, fail, undo = (reg.get("action", "bench.noop"), reg.get("action", "bench.fail"),
                        reg.get("compensation", "bench.undo"))
    start = time.perf_counter()
    calls = 0
    for _ in range(sagas):
        done: list[int] = []
        for i in range(steps):
            fn = fail if fail_last and i == steps - 1 else noop
            calls += 1
            try:
                fn(None)
            except PermanentError:
                for _ in reversed(done):
                    undo(None)
                    calls += 1
                break
            done.append(i)
    elapsed = time.perf_counter() - start
    return {"sagas_per_s": sagas / elapsed, "steps_per_s": calls / elapsed}
