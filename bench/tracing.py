"""The cost of OpenTelemetry tracing on the hot path: the bench workload with and
without ``TracingObserver`` (an SDK ``TracerProvider`` recording every span into a
batch processor with no exporter, so span creation is real and nothing leaves the
process), alternated run by run on fresh SQLite files; medians reported.

    python bench/tracing.py --sagas 300 --rounds 7 [--synchronous OFF] [--via tracer]

``--via processor`` (the default) has the observer hand finished spans straight to
the batch processor (``TracingObserver(processor=...)``); ``--via tracer`` records
them through the provider's tracer.

A traced run is timed until its observer is closed: every span of the run is
built on the clock, none left to the background thread during the next run.

Prints JSON: the median steps/s with tracing off and on, the median of the
per-pair slowdowns (pairing cancels the machine's drift between runs), and the
same for the process' CPU time per step execution -- on a shared, loaded machine
wall-clock throughput swings by tens of percent between runs, CPU time far less.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from reversa import Store
from reversa.benchkit.tracing import RecordedSpans
from reversa.benchkit.workload import run_durable


def _run(sagas: int, steps: int, synchronous: str, traced: bool, root: Path,
         n: int, via: str = "processor") -> tuple[float, float]:
    store = Store.open(root / f"run{n}.db", synchronous=synchronous)
    # Both kinds of run have the provider and its processor's thread; only a traced
    # run feeds it.
    spans = RecordedSpans(via)
    try:
        # A run is done once its spans are built: what the background thread has not
        # built yet is built on the clock (``finish``), never during the next run.
        result = run_durable(store, sagas, steps, True,
                             observers=[spans.observer] if traced else (),
                             finish=spans.observer.close if traced else None)
    finally:
        store.close()
        spans.shutdown()
    assert result.cpu_s is not None
    return result.steps / result.elapsed_s, 1e6 * result.cpu_s / result.steps


def _quartiles(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [values[0], values[0]] if values else []
    q = statistics.quantiles(values, n=4)
    return [q[0], q[2]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=300)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--synchronous", default="FULL")
    parser.add_argument("--via", choices=("processor", "tracer"), default="processor")
    args = parser.parse_args()
    off: list[float] = []
    on: list[float] = []
    cpu_off: list[float] = []
    cpu_on: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _run(50, args.steps, args.synchronous, True, root, -1, args.via)  # warm-up
        for n in range(args.rounds):
            # Alternate which goes first, so neither always follows the other.
            order = (False, True) if n % 2 == 0 else (True, False)
            for traced in order:
                value, cpu = _run(args.sagas, args.steps, args.synchronous, traced, root,
                                  2 * n + traced, args.via)
                (on if traced else off).append(value)
                (cpu_on if traced else cpu_off).append(cpu)
    slowdowns = [1 - t / u for u, t in zip(off, on, strict=True)]
    cpu_extra = [t / u - 1 for u, t in zip(cpu_off, cpu_on, strict=True)]
    print(json.dumps({
        "synchronous": args.synchronous, "via": args.via, "sagas": args.sagas,
        "rounds": args.rounds,
        "steps_per_s_off": round(statistics.median(off), 1),
        "steps_per_s_on": round(statistics.median(on), 1),
        "median_slowdown_pct": round(100 * statistics.median(slowdowns), 2),
        # The spread of the pairs: on a shared VM one pair can swing by +-10 %.
        "slowdown_quartiles_pct": [round(100 * q, 2) for q in _quartiles(slowdowns)],
        "cpu_us_per_step_off": round(statistics.median(cpu_off), 1),
        "cpu_us_per_step_on": round(statistics.median(cpu_on), 1),
        "median_cpu_increase_pct": round(100 * statistics.median(cpu_extra), 2),
        "off_runs": [round(v) for v in off], "on_runs": [round(v) for v in on]}, indent=2))


if __name__ == "__main__":
    main()
