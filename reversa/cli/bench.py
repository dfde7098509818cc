"""``reversa bench``: durable throughput and per-step latency, against a plain loop."""

from __future__ import annotations

import os
import tempfile
from typing import Annotated, Any

import typer

from ..core.store import Store, resolve_url
from .common import console, emit_json


def register(app: typer.Typer) -> None:
    """Attach the bench command."""

    @app.command("bench")
    def bench(
        sagas: Annotated[int, typer.Option(help="Number of sagas.")] = 500,
        steps: Annotated[int, typer.Option(help="No-op steps per saga.")] = 5,
        fail_last: Annotated[bool, typer.Option("--fail-last/--no-fail-last",
                                                help="Fail the last step (K-1 compensations).")]
        = True,
        db: Annotated[str | None, typer.Option("--db", help="Database URL or path (default: a "
                                               "fresh temporary SQLite file).")] = None,
        concurrency: Annotated[int, typer.Option(help="Sagas in flight per process.")] = 1,
        workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL).")] = 1,
        recovery: Annotated[bool, typer.Option("--recovery/--no-recovery",
                                               help="Also measure crash recovery time.")]
        = False,
        lease_s: Annotated[float, typer.Option(help="Lease for the recovery measurement.")]
        = 2.0,
        peers: Annotated[bool, typer.Option("--peers/--no-peers",
                                            help="Run the same workload on DBOS Transact.")]
        = False,
        synchronous: Annotated[str, typer.Option(help="SQLite synchronous pragma.")] = "FULL",
        json_out: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
    ) -> None:
        """Run N sagas of K no-op steps (the last failing) and report steps/s."""
        from ..benchkit.workload import plain_loop, run_durable

        tmp = None
        if db is None:
            tmp = tempfile.mkdtemp(prefix="reversa-bench-")
            db = os.path.join(tmp, "bench.db")
        url = resolve_url(db)
        out: dict[str, Any] = {"db": Store.open(url).url, "sagas": sagas, "steps": steps,
                               "fail_last": fail_last, "concurrency": concurrency,
                               "workers": workers, "synchronous": synchronous}
        if workers > 1:
            from ..benchkit.scale import run_workers

            out.update(run_workers(url, sagas, steps, fail_last, workers, concurrency))
        else:
            store = Store.open(url, synchronous=synchronous)
            out.update(run_durable(store, sagas, steps, fail_last, concurrency).summary())
            store.close()
        plain = plain_loop(sagas, steps, fail_last)
        out["plain_loop"] = plain
        out["overhead_ratio"] = plain["steps_per_s"] / out["steps_per_s"]
        if recovery:
            from ..benchkit.scale import measure_recovery

            out["recovery_s"], out["lease_s"] = measure_recovery(url, lease_s), lease_s
        if peers:
            from ..benchkit.peers import run_dbos

            out["dbos"] = run_dbos(url, sagas, steps, fail_last, concurrency)
            if "steps_per_s" in out["dbos"]:
                out["ratio_vs_dbos"] = {
                    "sagas_per_s": out["sagas_per_s"] / out["dbos"]["sagas_per_s"],
                    "steps_per_s": out["steps_per_s"] / out["dbos"]["steps_per_s"]}
        if json_out:
            emit_json(out)
            return
        console.print(f"[bold]reversa bench[/] {sagas} sagas x {steps} steps "
                      f"(fail last: {fail_last}) on {out['db']}")
        for key in ("sagas_per_s", "steps_per_s", "p50_step_ms", "p99_step_ms",
                    "overhead_ratio", "recovery_s"):
            if key in out:
                console.print(f"  {key:<16} {out[key]:,.3f}")
        console.print(f"  plain loop       {plain['steps_per_s']:,.0f} steps/s (no durability)")
        if "dbos" in out:
            console.print(f"  dbos             {out['dbos']}")
            if "ratio_vs_dbos" in out:
                console.print(f"  reversa/dbos     {out['ratio_vs_dbos']}")
