"""``reversa approvals ...``, ``reversa sagas rollback`` and ``reversa notify``."""

from __future__ import annotations

import logging
import os
from typing import Annotated, Any

import typer
from rich.table import Table

from ..core.engine import Engine
from ..core.errors import ReversaError
from ..core.governance import Approval, ApprovalKind, ApprovalStatus, FourEyes, load_policy
from ..core.inspector import Inspector
from ..core.registry import Registry
from ..core.states import SagaStatus
from ..core.views import SagaResult
from .apps import TRUST_ENV, saga_code
from .common import (
    APP_HELP,
    DB_HELP,
    ExitCode,
    console,
    emit_json,
    fail,
    open_inspector,
    open_store,
    report_pending,
    ts,
)

__all__ = ["POLICY_ENV", "load_governance", "register"]

POLICY_ENV = "REVERSA_POLICY"
log = logging.getLogger("reversa.notify")

Db = Annotated[str | None, typer.Option("--db", help=DB_HELP)]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
By = Annotated[str, typer.Option("--by", help="Your identity, recorded in the audit chain "
                                 "(e.g. user:alice).")]
Apps = Annotated[list[str] | None, typer.Option("--app", help=APP_HELP)]
Services = Annotated[str | None, typer.Option(
    "--services", help="Services factory as 'package.module:factory'. Overrides the one the "
    "saga recorded.")]
Trust = Annotated[bool, typer.Option(
    "--trust-recorded-app", help=f"Import the registry and services the saga recorded even "
    f"outside reversa.* and {TRUST_ENV}.")]
Policy = Annotated[str | None, typer.Option(
    "--policy", help=f"Governance policy file (TOML, [four_eyes.<workflow>] tables); default "
    f"${POLICY_ENV}. Without one, no four-eyes rule applies.")]


def load_governance(path: str | None) -> dict[str, FourEyes]:
    """The four-eyes policy from ``--policy`` or ``$REVERSA_POLICY`` (none: empty)."""
    chosen = path or os.environ.get(POLICY_ENV)
    if not chosen:
        return {}
    try:
        return load_policy(chosen)
    except ReversaError as exc:
        fail(exc.message)


def _code(inspector: Inspector, saga_id: str, apps: list[str] | None, services: str | None,
          trust: bool) -> tuple[Registry, dict[str, Any]]:
    record = inspector.record(saga_id)
    return saga_code(record.id, record.app, record.services, apps=apps, services=services,
                     trust_recorded=trust)


def _print_approval(a: Approval) -> None:
    console.print(f"[bold]approval #{a.id}[/] {a.kind} of saga {a.saga_id} ({a.workflow}) is "
                  f"[bold]{a.status}[/]")
    if a.outcome:
        console.print(f"outcome: {a.outcome}")


def register(app: typer.Typer, sagas_app: typer.Typer) -> None:
    """Attach the governance commands."""
    approvals_app = typer.Typer(no_args_is_help=True,
                                help="Approvals: held starts, four-eyes resolutions and "
                                     "rollbacks.")
    app.add_typer(approvals_app, name="approvals")

    @approvals_app.command("list")
    def approvals_list(
        db: Db = None,
        json_out: Json = False,
        status: Annotated[ApprovalStatus | None, typer.Option(
            "--status", help="Only these (default: pending).")] = None,
        kind: Annotated[ApprovalKind | None, typer.Option("--kind", help="Only this kind.")]
        = None,
        all_: Annotated[bool, typer.Option("--all", help="Every status.")] = False,
    ) -> None:
        """List approvals waiting for a decision (or all of them); writes nothing."""
        wanted = None if all_ else (status or ApprovalStatus.PENDING)
        views = open_inspector(db).approvals(status=wanted, kind=kind)
        if json_out:
            emit_json([v.model_dump(mode="json") for v in views])
            return
        table = Table(title="approvals")
        for col in ("id", "kind", "status", "saga", "workflow", "requested by", "requested",
                    "approvers", "reason"):
            table.add_column(col)
        for v in views:
            table.add_row(str(v.id), v.kind.value, v.status.value, v.saga_id, v.workflow,
                          v.requested_by, ts(v.requested_at),
                          f"{len(v.approvers)}/{v.required}", v.reason)
        console.print(table)

    @approvals_app.command("approve")
    def approvals_approve(
        approval_id: Annotated[int, typer.Argument(help="Approval id.")],
        by: By,
        note: Annotated[str, typer.Option(help="Why; recorded in the audit chain.")] = "",
        db: Db = None,
        json_out: Json = False,
        app_: Apps = None,
        services: Services = None,
        trust: Trust = False,
    ) -> None:
        """Approve; once enough distinct approvers agree, what it holds runs.

        A resolution (other than mark_resolved) or a rollback runs the workflow's
        handlers, so its registry is loaded as for `escalations resolve`.
        """
        store = open_store(db)
        inspector = Inspector(store)
        pending = inspector.approval(approval_id)
        runs_code = pending.kind is ApprovalKind.ROLLBACK or (
            pending.kind is ApprovalKind.RESOLUTION
            and pending.payload.get("action") != "mark_resolved")
        registry, resources = (_code(inspector, pending.saga_id, app_, services, trust)
                               if runs_code and pending.status is ApprovalStatus.PENDING
                               else (Registry(), {}))
        engine = Engine(registry, store, services=resources, heartbeat=False)
        try:
            decided = engine.approve(approval_id, by=by, note=note)
        finally:
            engine.close()
        saga = inspector.record(decided.saga_id)
        if json_out:
            emit_json({"approval": decided.model_dump(mode="json"),
                       "saga_status": saga.status.value})
        else:
            _print_approval(decided)
            console.print(f"saga {saga.id} is now [bold]{saga.status.value}[/]")
        if saga.status is SagaStatus.ESCALATED and decided.status is ApprovalStatus.EXECUTED:
            fail(f"saga {saga.id} escalated again; review it with `reversa escalations list`",
                 ExitCode.CHECK_FAILED)

    @approvals_app.command("reject")
    def approvals_reject(
        approval_id: Annotated[int, typer.Argument(help="Approval id.")],
        by: By,
        note: Annotated[str, typer.Option(help="Why it is rejected (required).")],
        db: Db = None,
        json_out: Json = False,
    ) -> None:
        """Reject: a held start ends rejected, a resolution is not run, a held saga runs on."""
        store = open_store(db)
        engine = Engine(Registry(), store, heartbeat=False)
        try:
            decided = engine.reject(approval_id, by=by, note=note)
        finally:
            engine.close()
        if json_out:
            emit_json(decided.model_dump(mode="json"))
        else:
            _print_approval(decided)

    @sagas_app.command("rollback")
    def sagas_rollback(
        saga_id: Annotated[str, typer.Argument(help="Saga id, or a unique prefix of it.")],
        by: By,
        reason: Annotated[str, typer.Option(help="Why; recorded in the audit chain.")],
        db: Db = None,
        json_out: Json = False,
        app_: Apps = None,
        services: Services = None,
        trust: Trust = False,
        policy: Policy = None,
    ) -> None:
        """Roll a saga back: a running one at its next step boundary, a completed one
        within its rollback window now (or hold it for a four-eyes approval).

        Exits 1 when the rollback escalated the saga.
        """
        governance = load_governance(policy)
        store = open_store(db)
        inspector = Inspector(store)
        full = inspector.resolve_id(saga_id)
        registry, resources = _code(inspector, full, app_, services, trust)
        engine = Engine(registry, store, services=resources, heartbeat=False,
                        governance=governance)
        try:
            outcome = engine.request_rollback(full, by=by, reason=reason)
        finally:
            engine.close()
        if isinstance(outcome, Approval):
            report_pending(outcome, f"the rollback of saga {full}", json_out)
            return
        _report_rollback(outcome, json_out)

    @app.command("notify")
    def notify(
        config: Annotated[str, typer.Option("--config", help="Webhook configuration (TOML, "
                                            "[[webhook]] tables).")],
        db: Db = None,
        once: Annotated[bool, typer.Option(
            "--once", help="Deliver what is due, then exit; exit 1 if something is left "
                           "undelivered.")] = False,
        poll_s: Annotated[float, typer.Option(min=0.01, help="Seconds between rounds.")] = 1.0,
        lease_s: Annotated[float, typer.Option(
            min=0.1, help="How long a claimed notification is this process's before another "
                          "may retry it.")] = 60.0,
    ) -> None:
        """Deliver the notification outbox to the configured webhooks (signed, retried)."""
        from .logs import LogFormat, configure_logging

        dispatcher = make_dispatcher(config, db, lease_s)
        configure_logging(LogFormat.TEXT)
        try:
            if once:
                report = dispatcher.run_once()
                console.print(f"{len(report.delivered)} delivered, {len(report.retrying)} to "
                              f"retry, {len(report.given_up)} given up")
                if report.retrying or report.given_up:
                    raise typer.Exit(int(ExitCode.CHECK_FAILED))
                return
            run_dispatcher(dispatcher, poll_s)
        finally:
            dispatcher.close()


def make_dispatcher(config: str, db: str | None, lease_s: float = 60.0) -> Any:
    """A :class:`reversa.notify.Dispatcher` for ``--notify``/``--config``, or exit with one line."""
    try:
        from ..notify import Dispatcher
    except ImportError:
        fail("notifications need httpx: pip install 'reversa[notify]'")
    from ..core.notify import load_notifications

    try:
        configs = load_notifications(config)
        return Dispatcher(open_store(db), configs, lease_s=lease_s)
    except ReversaError as exc:
        fail(exc.message)


def run_dispatcher(dispatcher: Any, poll_s: float) -> None:
    """Deliver round after round until SIGTERM/SIGINT."""
    import signal
    import threading

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.is_set():
            try:
                dispatcher.run_once()
            except ReversaError as exc:  # a database hiccup: next round retries
                log.warning("notify round failed: %s", exc.message)
            stop.wait(poll_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _report_rollback(result: SagaResult, json_out: bool) -> None:
    if json_out:
        emit_json(result.model_dump(mode="json"))
    elif result.status is SagaStatus.RUNNING:
        console.print(f"rollback of saga {result.saga_id} requested: its owner rolls it back "
                      "at its next step boundary")
    else:
        console.print(f"saga {result.saga_id} is now [bold]{result.status.value}[/]")
    if result.status is SagaStatus.ESCALATED:
        fail(f"the rollback of saga {result.saga_id} escalated (escalation "
             f"#{result.escalation_id}): {result.error}; review it with `reversa escalations "
             f"show {result.escalation_id}`", ExitCode.CHECK_FAILED)
