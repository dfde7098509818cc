"""``reversa``: run demos, inspect sagas, review escalations, verify the audit log."""

from __future__ import annotations

import os
import sys
import time
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

try:  # typer >= 0.2x vendors its own click; older releases use click itself
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as _cx  # type: ignore[no-redef]

from ..core.engine import Engine
from ..core.errors import ReversaError
from ..core.inspector import Inspector
from ..core.registry import Registry
from ..core.states import SagaStatus
from .apps import TRUST_ENV, saga_code
from .common import (
    APP_HELP,
    DB_HELP,
    ExitCode,
    console,
    emit_json,
    exit_code_for,
    fail,
    one_line,
    open_inspector,
    open_store,
    parse_age,
    parse_time,
    report_pending,
    ts,
)

app = typer.Typer(no_args_is_help=True, add_completion=True,
                  help="Reversa: governed rollback for multi-step agent workflows.")
sagas_app = typer.Typer(no_args_is_help=True, help="List and inspect sagas.")
esc_app = typer.Typer(no_args_is_help=True, help="Human review of escalated sagas.")
app.add_typer(sagas_app, name="sagas")
app.add_typer(esc_app, name="escalations")



def _version(value: bool) -> None:
    if value:
        from .. import __version__

        sys.stdout.write(f"reversa {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")]
    = False,
    signing_key: Annotated[str | None, typer.Option(
        "--signing-key", help="Audit signing key file (default $REVERSA_SIGNING_KEY).")] = None,
    witness: Annotated[str | None, typer.Option(
        "--witness-dir", help="Checkpoint witness directory (default $REVERSA_WITNESS_DIR).")]
    = None,
) -> None:
    """Reversa: governed rollback for multi-step agent workflows."""
    from .audit import apply_root_options

    apply_root_options(signing_key, witness)


Db = Annotated[str | None, typer.Option("--db", help=DB_HELP)]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
Apps = Annotated[list[str] | None, typer.Option("--app", help=APP_HELP)]
Services = Annotated[str | None, typer.Option(
    "--services", help="Services factory as 'package.module:factory' (found from the current "
    "directory too). Overrides the one the saga recorded.")]
Trust = Annotated[bool, typer.Option(
    "--trust-recorded-app", help=f"Import the registry and services the saga recorded even "
    f"outside reversa.* and {TRUST_ENV} (they come from the database: trust it first).")]


class Resolution(StrEnum):
    """What a human decides for an escalation."""

    RETRY = "retry"
    FORWARD_RECOVERY = "forward_recovery"
    MARK_RESOLVED = "mark_resolved"


def clip(text: str | None, width: int) -> str:
    """Shorten long text for a terminal; output that is not a terminal keeps all of it."""
    text = text or ""
    return text[:width] if console.is_terminal else text


@sagas_app.command("list")
def sagas_list(
    db: Db = None,
    json_out: Json = False,
    status: Annotated[list[SagaStatus] | None, typer.Option(
        "--status", help="Filter (repeatable).")] = None,
    workflow: Annotated[str | None, typer.Option(help="Filter by workflow name.")] = None,
    older_than: Annotated[str | None, typer.Option(help="Created at least this long ago "
                                                   "(e.g. 15m, 2h).")] = None,
    newer_than: Annotated[str | None, typer.Option(help="Created within this long.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many sagas.")] = 100,
) -> None:
    """List sagas, newest first, filtered by status, workflow and age."""
    older, newer = parse_age(older_than), parse_age(newer_than)
    inspector = open_inspector(db)
    now = time.time()
    rows = inspector.sagas(status=status, workflow=workflow,
                           created_before=None if older is None else now - older,
                           created_after=None if newer is None else now - newer, limit=limit)
    if json_out:
        emit_json([r.model_dump(mode="json") for r in rows])
        return
    table = Table(title=f"sagas in {inspector.url}")
    for col in ("id", "workflow", "status", "created", "failed step", "lease owner"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.id, r.workflow, r.status.value, ts(r.created_at),
                      r.failed_step or "-", r.lease_owner or "-")
    console.print(table)


@sagas_app.command("show")
def sagas_show(
    saga_id: Annotated[str, typer.Argument(help="Saga id, or a unique prefix of it.")],
    db: Db = None,
    json_out: Json = False,
    at: Annotated[str | None, typer.Option(
        "--at", help="Show the state as it was at this moment (ISO 8601 or epoch seconds), "
                     "rebuilt from the audit log alone.")] = None,
) -> None:
    """Show one saga: every step, compensation, attempt, timestamp and outcome code."""
    inspector = open_inspector(db)
    if at is not None:
        from .history import show_at

        show_at(inspector, saga_id, parse_time(at), json_out)
        return
    view = inspector.saga(saga_id)
    links = inspector.links(view.id)
    if json_out:
        emit_json({**view.model_dump(mode="json"),
                   "links": [link.model_dump(mode="json") for link in links],
                   "resources": inspector.resources(view.id)})
        return
    console.print(f"[bold]saga {view.id}[/] workflow={view.workflow} status=[bold]{view.status}"
                  f"[/] plan={view.plan_hash[:16]}… created={ts(view.created_at)}")
    if view.app or view.services:
        console.print(f"app: {view.app or '-'}  services: {view.services or '-'}")
    if view.failed_step:
        console.print(f"failed step: [red]{view.failed_step}[/] — {view.error}")
    table = Table(title="steps")
    for col in ("#", "step", "status", "reversibility", "depends on", "attempts", "outcome"):
        table.add_column(col)
    for s in view.steps:
        table.add_row(str(s.position), s.name, s.status.value, s.reversibility,
                      ",".join(s.depends_on) or "-", f"{s.attempts}/{s.comp_attempts}",
                      s.outcome or "-")
    console.print(table)
    calls = Table(title="attempts")
    for col in ("step", "phase", "attempt", "started", "finished", "outcome", "error"):
        calls.add_column(col)
    for s in view.steps:
        for a in s.history:
            calls.add_row(s.name, a.phase, str(a.attempt), ts(a.started_at), ts(a.finished_at),
                          a.outcome, clip(a.error, 60))
    console.print(calls)
    for rb in view.rollbacks:
        pred = rb.record.get("predicate", {})
        console.print(f"rollback #{rb.id}: scope={rb.scope} outcome={rb.outcome} "
                      f"duration={rb.duration_s:.3f}s predicate={pred.get('ok')} "
                      f"({pred.get('reason')})")
    for e in view.escalations:
        console.print(f"[yellow]escalation #{e.id}[/] ({e.kind}) {e.status}: {e.reason}")
    for link in links:
        if link.consumer_saga == view.id:
            console.print(f"consumes: step {link.consumer_step!r} <- saga {link.provider_saga}"
                          f" step {link.provider_step or '*'} ({link.resource or link.how})")
        else:
            console.print(f"consumed by: saga {link.consumer_saga} step {link.consumer_step!r}"
                          f" <- step {link.provider_step or '*'} ({link.resource or link.how})")


@app.command("dry-run")
def dry_run(
    saga_id: Annotated[str, typer.Argument(help="Saga id, or a unique prefix of it.")],
    db: Db = None,
    json_out: Json = False,
    app_: Apps = None,
    services: Services = None,
    trust: Trust = False,
) -> None:
    """Evaluate a saga's rollback now without executing anything (writes nothing)."""
    inspector = open_inspector(db)
    record = inspector.record(saga_id)
    registry, resources = saga_code(record.id, record.app, record.services, apps=app_,
                                    services=services, trust_recorded=trust)
    engine = Engine(registry, inspector.store, services=resources, heartbeat=False)
    try:
        report = engine.dry_run(record.id)
    finally:
        engine.close()
    if json_out:
        emit_json(report.to_dict())
        raise typer.Exit(ExitCode.OK if report.feasible else ExitCode.CHECK_FAILED)
    verdict = "[green]feasible[/]" if report.feasible else "[red]infeasible[/]"
    console.print(f"rollback of saga {record.id}: {verdict}")
    table = Table()
    for col in ("step", "would", "feasible", "preconditions", "cost"):
        table.add_column(col)
    for f in report.steps:
        pre = "; ".join(f"{p['name']}={'ok' if p['ok'] else 'NO: ' + p['reason']}"
                        for p in f.preconditions) or "-"
        cost = "-" if not f.cost else f"{f.cost.get('amount')} {f.cost.get('unit')}"
        table.add_row(f.step, f.action, "yes" if f.feasible else "NO", pre, cost)
    console.print(table)
    overhead = report.overhead
    if overhead:
        console.print(f"expected human review: {overhead['review_minutes']:g} min "
                      f"({', '.join(r['class'] for r in overhead['review']) or 'none foreseen'})"
                      f"; costs by kind: {overhead['by_kind'] or 'none'}; total: "
                      f"{report.total_costs or 'none'}")
    for dep in (report.dependents or {}).get("dependents", []):
        console.print(f"dependent saga {dep['saga']} ({dep['workflow']}, {dep['status']}): its "
                      f"rollback is {'feasible' if dep['feasible'] else 'INFEASIBLE'}; policy "
                      f"{report.dependents['policy']}")  # type: ignore[index]
    for problem in report.problems:
        console.print(f"[red]- {problem}[/]")
    raise typer.Exit(ExitCode.OK if report.feasible else ExitCode.CHECK_FAILED)


@esc_app.command("list")
def escalations_list(
    db: Db = None,
    json_out: Json = False,
    all_: Annotated[bool, typer.Option("--all", help="Include resolved ones.")] = False,
) -> None:
    """List escalations awaiting a human (or all of them)."""
    views = open_inspector(db).escalations(status=None if all_ else "open")
    if json_out:
        emit_json([v.model_dump(mode="json") for v in views])
        return
    table = Table(title="escalations")
    for col in ("id", "kind", "saga", "created", "status", "reason"):
        table.add_column(col)
    for v in views:
        table.add_row(str(v.id), v.kind, v.saga_id, ts(v.created_at), v.status,
                      clip(v.reason, 90))
    console.print(table)


@esc_app.command("show")
def escalations_show(escalation_id: int, db: Db = None, json_out: Json = False) -> None:
    """Show an escalation with its full state report (needs no workflow code)."""
    view = open_inspector(db).escalation(escalation_id)
    if json_out:
        emit_json(view.model_dump(mode="json"))
        return
    console.print(f"[bold]escalation #{view.id}[/] ({view.kind}) saga={view.saga_id} "
                  f"status={view.status}")
    console.print(f"reason: {view.reason}")
    table = Table(title="state report")
    for col in ("step", "status", "effect remains", "error"):
        table.add_column(col)
    for s in view.report.get("steps", []):
        table.add_row(s["step"], s["status"], "YES" if s["effect_remains"] else "no",
                      clip(s.get("error"), 70))
    console.print(table)
    if view.resolution:
        console.print(f"resolved: {view.resolution} by {view.resolved_by} — {view.note}")


@esc_app.command("resolve")
def escalations_resolve(
    escalation_id: int,
    action: Annotated[Resolution, typer.Option(
        help="retry the rollback, run the forward recovery, or mark_resolved (fixed by hand; "
             "runs nothing and needs no workflow code).")],
    author: Annotated[str, typer.Option(help="Who takes responsibility.")],
    note: Annotated[str, typer.Option(help="Why; recorded in the audit log.")] = "",
    db: Db = None,
    json_out: Json = False,
    app_: Apps = None,
    services: Services = None,
    trust: Trust = False,
    policy: Annotated[str | None, typer.Option(
        "--policy", help="Governance policy file (TOML); default $REVERSA_POLICY. When its "
        "four-eyes rule applies, the resolution waits for a second approver.")] = None,
) -> None:
    """Resolve an escalation; the resolution and its author are recorded.

    Exits 1 when the retry or forward recovery escalated the saga again.
    """
    from ..core.governance import Approval
    from .governance import load_governance

    governance = load_governance(policy)
    store = open_store(db)
    inspector = Inspector(store)
    escalation = inspector.escalation(escalation_id)
    if escalation.status != "open":
        fail(f"escalation #{escalation_id} is already resolved ({escalation.resolution} by "
             f"{escalation.resolved_by}); list open ones with `reversa escalations list`")
    advisory = escalation.kind != "rollback"
    if advisory and action is not Resolution.MARK_RESOLVED:
        fail(f"escalation #{escalation_id} is a {escalation.kind} warning: the saga's state is "
             "not changed by it; close it with --action mark_resolved once it is dealt with")
    resources: dict[str, Any] = {}
    if action is Resolution.MARK_RESOLVED:
        registry = Registry()
    else:
        record = inspector.record(escalation.saga_id)
        registry, resources = saga_code(record.id, record.app, record.services, apps=app_,
                                        services=services, trust_recorded=trust)
    engine = Engine(registry, store, services=resources, heartbeat=False,
                    governance=governance)
    try:
        result = engine.resolve(escalation_id, action=action.value, author=author, note=note)
    finally:
        engine.close()
    if isinstance(result, Approval):
        report_pending(result, f"the {action.value}", json_out)
        return
    if json_out:
        emit_json(result.model_dump(mode="json"))
    else:
        console.print(f"escalation #{escalation_id} resolved ({action.value}) by {author}; "
                      f"saga {result.saga_id} is now [bold]{result.status}[/]")
    if result.status is SagaStatus.ESCALATED and not advisory:
        new = result.escalation_id
        reason = inspector.escalation(new).reason if new is not None else result.error
        fail(f"the {action.value} escalated saga {result.saga_id} again (escalation #{new}): "
             f"{reason}; review it with `reversa escalations show {new}`",
             ExitCode.CHECK_FAILED)


@app.command("db-upgrade")
def db_upgrade(db: Db = None) -> None:
    """Create or upgrade the schema in place (also done automatically on open)."""
    from ..core.store import Store

    store = Store.open(db, migrate=False)
    before, after = store.migrate()
    console.print(f"schema version {before} -> {after} at {store.url}")


def _register_extensions() -> None:
    from . import audit, bench, chaos, console, demo, governance, sim, sla, worker
    from .mcp import register as register_mcp

    audit.register(app)
    governance.register(app, sagas_app)
    demo.register(app)
    sla.register(app)
    bench.register(app)
    worker.register(app)
    sim.register(app)
    register_mcp(app)
    chaos.register(app)
    console.register(app)


_register_extensions()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: every failure ends as ONE line on stderr.

    Exit codes are those of :class:`~reversa.cli.common.ExitCode`; set
    ``REVERSA_DEBUG=1`` to see the traceback of an internal error.
    """
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="reversa", standalone_mode=False)
    except _cx.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "reversa"
        _die(f"{exc.format_message().rstrip('.')}; see `{where} --help`", exc.exit_code)
    except _cx.ClickException as exc:
        _die(exc.format_message(), exc.exit_code)
    except typer.Abort:
        _die("interrupted", ExitCode.INTERRUPTED)
    except ReversaError as exc:
        _die(exc.message, exit_code_for(exc))
    except KeyboardInterrupt:
        _die("interrupted", ExitCode.INTERRUPTED)
    except Exception as exc:
        if os.environ.get("REVERSA_DEBUG"):
            raise
        _die(f"internal error: {type(exc).__name__}: {exc}; this is a bug in Reversa, rerun "
             "with REVERSA_DEBUG=1 for the traceback and report it", ExitCode.INTERNAL)
    sys.exit(code if isinstance(code, int) else 0)


def _die(message: str, code: int) -> None:
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.exit(int(code))
