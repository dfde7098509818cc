"""``reversa worker``: claim orphaned sagas, finish them, run the watchdog."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import APP_HELP, DB_HELP, console, fail, load_registry, load_services, open_store


def register(app: typer.Typer) -> None:
    """Attach the worker command."""

    @app.command("worker")
    def worker(
        db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
        app_: Annotated[list[str] | None, typer.Option("--app", help=APP_HELP)] = None,
        lease_s: Annotated[float, typer.Option(help="Lease duration in seconds.")] = 30.0,
        poll_s: Annotated[float, typer.Option(help="Seconds between claim rounds.")] = 0.5,
        batch: Annotated[int, typer.Option(help="Sagas claimed per round.")] = 8,
        stall_after_s: Annotated[float, typer.Option(help="Default watchdog threshold.")]
        = 300.0,
        once: Annotated[bool, typer.Option("--once", help="One round, then exit.")] = False,
        services: Annotated[str | None, typer.Option(
            help="'package.module:factory' returning the services mapping handed to "
                 "handlers (clients for ledgers, chains, robots).")] = None,
    ) -> None:
        """Finish sagas whose owner died; detect stalled ones (SIGTERM releases leases)."""
        from ..core.errors import ReversaError
        from ..core.worker import Worker

        store = open_store(db)
        try:
            registry = load_registry(app_ or [], _builtin_hints())
            resources = load_services(services) if services else {}
        except ReversaError as exc:
            fail(exc.message)
        w = Worker(registry, store, lease_s=lease_s, poll_s=poll_s, batch=batch,
                   stall_after_s=stall_after_s, services=resources)
        console.print(f"worker {w.engine.owner} on {store.url} (lease {lease_s:g}s)")
        if once:
            done = w.run_once()
            console.print(f"finished {len(done)} saga(s)")
            return
        w.run_forever()


def _builtin_hints() -> list[str | None]:
    # Workers can always finish Reversa's own demo and bench sagas.
    return ["reversa.demos.onboarding:registry", "reversa.benchkit.workload:bench_registry"]
