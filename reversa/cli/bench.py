"""``reversa bench``: durable throughput and per-step latency, against a plain loop."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

import typer

from ..core.store import Store, resolve_url
from .common import console, emit_json, err_console, fail, open_store
from .progress import Phases, interactive, phases


class Trace(StrEnum):
    """How ``--trace`` records the spans: not at all, straight to a processor, via a tracer."""

    OFF = "off"
    PROCESSOR = "processor"
    TRACER = "tracer"


class Synchronous(StrEnum):
    """SQLite ``synchronous`` pragma values (``FULL`` fsyncs every commit)."""

    OFF = "OFF"
    NORMAL = "NORMAL"
    FULL = "FULL"
    EXTRA = "EXTRA"


@contextlib.contextmanager
def _database(db: str | None) -> Iterator[tuple[str, bool]]:
    """The URL to bench on, and whether it is a temporary file removed afterwards."""
    if db is not None:
        yield resolve_url(db), False
        return
    # Removed on the way out, also when the run fails or is interrupted.
    with tempfile.TemporaryDirectory(prefix="reversa-bench-") as tmp:
        yield resolve_url(f"{tmp}/bench.db"), True


def register(app: typer.Typer) -> None:
    """Attach the bench command."""

    @app.command("bench")
    def bench(
        sagas: Annotated[int, typer.Option(min=1, help="Number of sagas.")] = 500,
        steps: Annotated[int, typer.Option(
            min=1, help="No-op steps per saga (with --fail-last and 1 step, the saga fails "
                        "with nothing to compensate).")] = 5,
        fail_last: Annotated[bool, typer.Option("--fail-last/--no-fail-last",
                                                help="Fail the last step (K-1 compensations).")]
        = True,
        db: Annotated[str | None, typer.Option("--db", help="Database URL or path (default: a "
                                               "temporary SQLite file, removed afterwards).")]
        = None,
        concurrency: Annotated[int, typer.Option(min=1, help="Sagas in flight per process.")]
        = 1,
        workers: Annotated[int, typer.Option(
            min=1, help="Worker processes; more than 1 needs a postgresql:// --db.")] = 1,
        recovery: Annotated[bool, typer.Option("--recovery/--no-recovery",
                                               help="Also measure crash recovery time.")]
        = False,
        lease_s: Annotated[float, typer.Option(
            min=0.1, help="Lease (seconds) for the recovery measurement.")] = 2.0,
        peers: Annotated[bool, typer.Option("--peers/--no-peers",
                                            help="Run the same workload on DBOS Transact.")]
        = False,
        synchronous: Annotated[Synchronous, typer.Option(
            case_sensitive=False, help="SQLite synchronous pragma.")] = Synchronous.FULL,
        trace: Annotated[Trace, typer.Option(
            case_sensitive=False,
            help="Record every span with the OpenTelemetry SDK (then dropped): handed "
                 "straight to its batch processor, or through a tracer; compare with "
                 "off to see what tracing costs. Needs opentelemetry-sdk.")] = Trace.OFF,
        json_out: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
    ) -> None:
        """Run N sagas of K no-op steps (the last failing) and report steps/s."""
        if trace is not Trace.OFF and workers > 1:
            fail(f"--trace {trace.value} measures one process; drop --workers")
        if workers > 1:
            if db is None or not resolve_url(db).startswith("postgresql"):
                # SQLite has one writer: more processes only queue on its file lock,
                # which would be reported as (poor) scale-out.
                fail(f"--workers {workers} measures scale-out on PostgreSQL only; pass "
                     "--db postgresql://USER@HOST/DB, or drop --workers to bench SQLite")
            if workers > sagas:
                fail(f"--workers {workers} is more than --sagas {sagas}; every worker "
                     "needs at least one saga")
        with _database(db) as (url, temporary), \
                phases(interactive(json_out), err_console) as progress:
            out = _run(url, progress, sagas=sagas, steps=steps, fail_last=fail_last,
                       concurrency=concurrency, workers=workers, recovery=recovery,
                       lease_s=lease_s, peers=peers, synchronous=synchronous, trace=trace)
            out["temporary_db"] = temporary
        if json_out:
            emit_json(out)
            return
        where = "a temporary SQLite database (removed)" if temporary else out["db"]
        console.print(f"[bold]reversa bench[/] {sagas} sagas x {steps} steps "
                      f"(fail last: {fail_last}) on {where}")
        for key in ("sagas_per_s", "steps_per_s", "p50_step_ms", "p99_step_ms",
                    "overhead_ratio", "recovery_s"):
            if key in out:
                console.print(f"  {key:<16} {out[key]:,.3f}")
        console.print(f"  plain loop       {out['plain_loop']['steps_per_s']:,.0f} steps/s "
                      "(no durability)")
        if "spans_recorded" in out:
            console.print(f"  traced           {out['trace']}: {out['spans_recorded']:,} spans "
                          "recorded (dropped after)")
        if "dbos" in out:
            console.print(f"  dbos             {out['dbos']}")
            if "ratio_vs_dbos" in out:
                console.print(f"  reversa/dbos     {out['ratio_vs_dbos']}")


def _recorded_spans(how: Trace) -> Any:
    try:
        from ..benchkit.tracing import RecordedSpans
    except ImportError:
        fail(f"--trace {how.value} records real spans and needs the OpenTelemetry SDK: "
             "pip install 'reversa[otel]' opentelemetry-sdk")
    return RecordedSpans(how.value)


def _run(url: str, progress: Phases, *, sagas: int, steps: int, fail_last: bool,
         concurrency: int, workers: int, recovery: bool, lease_s: float, peers: bool,
         synchronous: Synchronous, trace: Trace = Trace.OFF) -> dict[str, Any]:
    from ..benchkit.workload import plain_loop, run_durable

    tracing = _recorded_spans(trace) if trace is not Trace.OFF else None

    check = open_store(url)  # one line (exit 2 or 3) if it cannot be opened
    out: dict[str, Any] = {"db": check.url, "sagas": sagas, "steps": steps,
                           "fail_last": fail_last, "concurrency": concurrency,
                           "workers": workers, "synchronous": synchronous.value,
                           "trace": trace.value}
    check.close()
    if workers > 1:
        from ..benchkit.scale import run_workers

        progress.start(f"{sagas} sagas on {workers} worker processes")
        out.update(run_workers(url, sagas, steps, fail_last, workers, concurrency))
    else:
        store = Store.open(url, synchronous=synchronous.value)
        try:
            advance = progress.start(f"{sagas} sagas x {steps} steps", total=sagas)
            out.update(run_durable(
                store, sagas, steps, fail_last, concurrency, on_saga=advance,
                observers=[tracing.observer] if tracing is not None else (),
                # Timed until every span is built: none is left to the background thread.
                finish=tracing.observer.close if tracing is not None else None).summary())
        finally:
            store.close()
            if tracing is not None:
                out["spans_recorded"] = tracing.shutdown()
    progress.start("the same calls in a plain loop")
    plain = plain_loop(sagas, steps, fail_last)
    out["plain_loop"] = plain
    out["overhead_ratio"] = plain["steps_per_s"] / out["steps_per_s"]
    if recovery:
        from ..benchkit.scale import measure_recovery

        progress.start(f"recovery after SIGKILL (lease {lease_s:g}s)")
        out["recovery_s"], out["lease_s"] = measure_recovery(url, lease_s), lease_s
    if peers:
        from ..benchkit.peers import run_dbos

        progress.start("the same workload on DBOS Transact")
        out["dbos"] = run_dbos(url, sagas, steps, fail_last, concurrency)
        if "steps_per_s" in out["dbos"]:
            out["ratio_vs_dbos"] = {
                "sagas_per_s": out["sagas_per_s"] / out["dbos"]["sagas_per_s"],
                "steps_per_s": out["steps_per_s"] / out["dbos"]["steps_per_s"]}
    progress.done()
    return out
