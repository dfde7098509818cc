"""``reversa worker``: claim orphaned sagas, finish them, run the watchdog."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer

from .common import (
    APP_HELP,
    DB_HELP,
    ExitCode,
    fail,
    load_registry,
    load_services,
    open_store,
)
from .logs import LogFormat, configure_logging

log = logging.getLogger("reversa.worker")


def register(app: typer.Typer) -> None:
    """Attach the worker command."""

    @app.command("worker")
    def worker(
        db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
        app_: Annotated[list[str] | None, typer.Option("--app", help=APP_HELP)] = None,
        lease_s: Annotated[float, typer.Option(
            min=0.1, help="Lease duration in seconds; a crashed worker's sagas are taken "
                          "over this long after its last heartbeat.")] = 30.0,
        poll_s: Annotated[float, typer.Option(
            min=0.01, help="Seconds between claim rounds.")] = 0.5,
        batch: Annotated[int, typer.Option(min=1, help="Sagas claimed per round.")] = 8,
        stall_after_s: Annotated[float, typer.Option(
            min=0.1, help="Default watchdog threshold in seconds (a workflow's own "
                          "stall_after_s wins).")] = 300.0,
        once: Annotated[bool, typer.Option(
            "--once", help="One round, then exit; exit 1 if a claimed saga was not "
                           "finished.")] = False,
        services: Annotated[str | None, typer.Option(
            help="'package.module:factory' returning the services mapping handed to "
                 "handlers (clients for ledgers, chains, robots).")] = None,
        feasibility_every: Annotated[float, typer.Option(
            min=0, help="Seconds between continuous feasibility checks of running and "
                        "recently completed sagas (0: off).")] = 60.0,
        feasibility_horizon: Annotated[float, typer.Option(
            min=0, help="Completed sagas are still assessed this many seconds after they "
                        "ended.")] = 3600.0,
        reconcile_every: Annotated[float, typer.Option(
            min=0, help="Seconds between reconciliations of finished sagas against the real "
                        "systems (0: off).")] = 300.0,
        reconcile_horizon: Annotated[float, typer.Option(
            min=0, help="Sagas that ended within this many seconds are reconciled.")]
        = 86_400.0,
        notify: Annotated[str | None, typer.Option(
            "--notify", help="Webhook configuration (TOML): deliver the notification outbox "
                             "each round too (needs reversa[notify]).")] = None,
        log_format: Annotated[LogFormat, typer.Option(
            "--log-format", case_sensitive=False,
            help="One line per event on stderr: text, or one JSON object per line.")]
        = LogFormat.TEXT,
        wait_db: Annotated[float, typer.Option(
            "--wait-db", min=0,
            help="Seconds a starting worker waits for a database that is unreachable for "
                 "now (restarting, still starting); a wrong URL, password or database "
                 "name fails at once.")] = 60.0,
        trace: Annotated[bool, typer.Option(
            "--trace",
            help="OpenTelemetry spans per saga, step and compensation, through the "
                 "process' tracer provider (set it up in an --app module, or run under "
                 "opentelemetry-instrument); needs reversa[otel].")] = False,
    ) -> None:
        """Finish sagas whose owner died; detect stalled ones (SIGTERM releases leases)."""
        from ..core.errors import ReversaError
        from ..core.worker import Worker

        configure_logging(log_format)
        store = open_store(db, wait_s=0.0 if once else wait_db)
        try:
            registry = load_registry(app_ or [], _builtin_hints())
            resources = load_services(services) if services else {}
        except ReversaError as exc:
            fail(exc.message)
        dispatcher = None
        if notify is not None:
            from .governance import make_dispatcher

            dispatcher = make_dispatcher(notify, db)
        observers = [_tracing()] if trace else []
        w = Worker(registry, store, lease_s=lease_s, poll_s=poll_s, batch=batch,
                   stall_after_s=stall_after_s, services=resources,
                   feasibility_every_s=feasibility_every or None,
                   feasibility_horizon_s=feasibility_horizon,
                   reconcile_every_s=reconcile_every or None,
                   reconcile_horizon_s=reconcile_horizon, observers=observers)
        try:
            log.info("worker %s on %s (lease %gs, poll %gs, batch %d)%s", w.engine.owner,
                     store.url, lease_s, poll_s, batch, ", one round" if once else "",
                     extra={"event": "started", "saga": None, "fields": {
                         "owner": w.engine.owner, "db": store.url, "lease_s": lease_s,
                         "poll_s": poll_s, "batch": batch, "once": once}})
            on_round = None if dispatcher is None else dispatcher.run_once
            if not once:
                try:
                    w.run_forever(on_round=on_round)
                finally:
                    if dispatcher is not None:
                        dispatcher.close()
                log.info("worker %s stopped", w.engine.owner,
                         extra={"event": "stopped", "saga": None, "fields": {}})
                return
            try:
                rnd = w.run_round()
                if on_round is not None:
                    on_round()
            finally:
                w.engine.close()
                if dispatcher is not None:
                    dispatcher.close()
            level = logging.ERROR if rnd.unfinished else logging.INFO
            log.log(level, "round done: %d saga(s) ended, %d claimed but not finished",
                    len(rnd.ended), len(rnd.unfinished),
                    extra={"event": "round_done", "saga": None, "fields": {
                        "ended": len(rnd.ended), "unfinished": sorted(rnd.unfinished)}})
            if rnd.unfinished:
                raise typer.Exit(int(ExitCode.CHECK_FAILED))
        finally:
            for observer in observers:
                observer.close()  # the spans of the last sagas reach the provider


def _tracing() -> Any:
    """A TracingObserver on the global tracer provider, or one line saying what is missing."""
    try:
        from opentelemetry import trace

        from ..observability.otel import TracingObserver
    except ImportError:
        fail("--trace needs the OpenTelemetry API: pip install 'reversa[otel]' (and an "
             "SDK with an exporter, configured in an --app module or by "
             "opentelemetry-instrument)")
    provider = trace.get_tracer_provider()
    if type(provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
        # Spans would go nowhere: say so once instead of tracing in silence.
        log.warning("--trace: no OpenTelemetry tracer provider is set up in this process; "
                    "spans are dropped until one is (configure a TracerProvider in an --app "
                    "module, or run the worker under opentelemetry-instrument)",
                    extra={"event": "tracing_unconfigured", "saga": None, "fields": {}})
    return TracingObserver()


def _builtin_hints() -> list[str | None]:
    # Workers can always finish Reversa's own demo and bench sagas.
    return ["reversa.demos.onboarding:registry", "reversa.benchkit.workload:bench_registry"]
