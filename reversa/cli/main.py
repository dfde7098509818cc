"""``reversa``: run demos, inspect sagas, review escalations, verify the audit log."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

try:  # typer >= 0.2x vendors its own click; older releases use click itself
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as _cx  # type: ignore[no-redef]

from ..core.engine import Engine
from ..core.engine.inspect import escalation_view, saga_view
from ..core.errors import ReversaError
from .common import (
    APP_HELP,
    DB_HELP,
    ExitCode,
    console,
    emit_json,
    exit_code_for,
    fail,
    load_registry,
    one_line,
    open_store,
    parse_age,
    ts,
)

app = typer.Typer(no_args_is_help=True, add_completion=True,
                  help="Reversa: governed rollback for multi-step agent workflows.")
sagas_app = typer.Typer(no_args_is_help=True, help="List and inspect sagas.")
esc_app = typer.Typer(no_args_is_help=True, help="Human review of escalated sagas.")
audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident log.")
app.add_typer(sagas_app, name="sagas")
app.add_typer(esc_app, name="escalations")
app.add_typer(audit_app, name="audit")



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
) -> None:
    """Reversa: governed rollback for multi-step agent workflows."""


Db = Annotated[str | None, typer.Option("--db", help=DB_HELP)]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
Apps = Annotated[list[str] | None, typer.Option("--app", help=APP_HELP)]


@sagas_app.command("list")
def sagas_list(
    db: Db = None,
    json_out: Json = False,
    status: Annotated[list[str] | None, typer.Option("--status", help="Filter (repeatable).")]
    = None,
    workflow: Annotated[str | None, typer.Option(help="Filter by workflow name.")] = None,
    older_than: Annotated[str | None, typer.Option(help="Created at least this long ago "
                                                   "(e.g. 15m, 2h).")] = None,
    newer_than: Annotated[str | None, typer.Option(help="Created within this long.")] = None,
    limit: int = 100,
) -> None:
    """List sagas, newest first, filtered by status, workflow and age."""
    store = open_store(db)
    now = time.time()
    older, newer = parse_age(older_than), parse_age(newer_than)
    rows = store.list_sagas(status=status, workflow=workflow,
                            created_before=None if older is None else now - older,
                            created_after=None if newer is None else now - newer, limit=limit)
    if json_out:
        emit_json(rows)
        return
    table = Table(title=f"sagas in {store.url}")
    for col in ("id", "workflow", "status", "created", "failed step", "lease owner"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], r["workflow"], r["status"], ts(r["created_at"]),
                      r["failed_step"] or "-", r["lease_owner"] or "-")
    console.print(table)


@sagas_app.command("show")
def sagas_show(saga_id: str, db: Db = None, json_out: Json = False) -> None:
    """Show one saga: every step, compensation, attempt, timestamp and outcome code."""
    store = open_store(db)
    try:
        view = saga_view(store, saga_id)
    except ReversaError as exc:
        fail(exc.message)
    if json_out:
        emit_json(view.model_dump(mode="json"))
        return
    console.print(f"[bold]saga {view.id}[/] workflow={view.workflow} status=[bold]{view.status}"
                  f"[/] plan={view.plan_hash[:16]}… created={ts(view.created_at)}")
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
                          a.outcome, (a.error or "")[:60])
    console.print(calls)
    for rb in view.rollbacks:
        pred = rb.record.get("predicate", {})
        console.print(f"rollback #{rb.id}: scope={rb.scope} outcome={rb.outcome} "
                      f"duration={rb.duration_s:.3f}s predicate={pred.get('ok')} "
                      f"({pred.get('reason')})")
    for e in view.escalations:
        console.print(f"[yellow]escalation #{e.id}[/] {e.status}: {e.reason}")


@app.command("dry-run")
def dry_run(saga_id: str, db: Db = None, json_out: Json = False, app_: Apps = None) -> None:
    """Evaluate a saga's rollback now without executing anything."""
    store = open_store(db)
    try:
        row, _ = store.load(saga_id)
        engine = Engine(load_registry(app_ or [], [row["app"]]), store, heartbeat=False)
        report = engine.dry_run(saga_id)
    except ReversaError as exc:
        fail(exc.message)
    if json_out:
        emit_json(report.to_dict())
        raise typer.Exit(0 if report.feasible else 1)
    verdict = "[green]feasible[/]" if report.feasible else "[red]infeasible[/]"
    console.print(f"rollback of saga {saga_id}: {verdict}")
    table = Table()
    for col in ("step", "would", "feasible", "preconditions", "cost"):
        table.add_column(col)
    for f in report.steps:
        pre = "; ".join(f"{p['name']}={'ok' if p['ok'] else 'NO: ' + p['reason']}"
                        for p in f.preconditions) or "-"
        cost = "-" if not f.cost else f"{f.cost.get('amount')} {f.cost.get('unit')}"
        table.add_row(f.step, f.action, "yes" if f.feasible else "NO", pre, cost)
    console.print(table)
    for problem in report.problems:
        console.print(f"[red]- {problem}[/]")
    raise typer.Exit(0 if report.feasible else 1)


@esc_app.command("list")
def escalations_list(
    db: Db = None,
    json_out: Json = False,
    all_: Annotated[bool, typer.Option("--all", help="Include resolved ones.")] = False,
) -> None:
    """List escalations awaiting a human (or all of them)."""
    store = open_store(db)
    rows = store.rows("escalations") if all_ else store.rows("escalations", status="open")
    views = [escalation_view(r) for r in rows]
    if json_out:
        emit_json([v.model_dump(mode="json") for v in views])
        return
    table = Table(title="escalations")
    for col in ("id", "saga", "created", "status", "reason"):
        table.add_column(col)
    for v in views:
        table.add_row(str(v.id), v.saga_id, ts(v.created_at), v.status, v.reason[:90])
    console.print(table)


@esc_app.command("show")
def escalations_show(escalation_id: int, db: Db = None, json_out: Json = False) -> None:
    """Show an escalation with its full state report."""
    store = open_store(db)
    rows = store.rows("escalations", id=escalation_id)
    if not rows:
        fail(f"no escalation #{escalation_id}; list them with `reversa escalations list`")
    view = escalation_view(rows[0])
    if json_out:
        emit_json(view.model_dump(mode="json"))
        return
    console.print(f"[bold]escalation #{view.id}[/] saga={view.saga_id} status={view.status}")
    console.print(f"reason: {view.reason}")
    table = Table(title="state report")
    for col in ("step", "status", "effect remains", "error"):
        table.add_column(col)
    for s in view.report.get("steps", []):
        table.add_row(s["step"], s["status"], "YES" if s["effect_remains"] else "no",
                      (s.get("error") or "")[:70])
    console.print(table)
    if view.resolution:
        console.print(f"resolved: {view.resolution} by {view.resolved_by} — {view.note}")


@esc_app.command("resolve")
def escalations_resolve(
    escalation_id: int,
    action: Annotated[str, typer.Option(help="retry | forward_recovery | mark_resolved")],
    author: Annotated[str, typer.Option(help="Who takes responsibility.")],
    note: Annotated[str, typer.Option(help="Why; recorded in the audit log.")] = "",
    db: Db = None,
    json_out: Json = False,
    app_: Apps = None,
) -> None:
    """Resolve an escalation; the resolution and its author are recorded."""
    store = open_store(db)
    rows = store.rows("escalations", id=escalation_id)
    if not rows:
        fail(f"no escalation #{escalation_id}; list them with `reversa escalations list`")
    try:
        row, _ = store.load(rows[0]["saga_id"])
        engine = Engine(load_registry(app_ or [], [row["app"]]), store, heartbeat=False)
        result = engine.resolve(escalation_id, action=action, author=author, note=note)
    except ReversaError as exc:
        fail(exc.message)
    if json_out:
        emit_json(result.model_dump(mode="json"))
        return
    console.print(f"escalation #{escalation_id} resolved ({action}) by {author}; saga "
                  f"{result.saga_id} is now [bold]{result.status}[/]")


@audit_app.command("verify")
def audit_verify(
    db: Db = None,
    json_out: Json = False,
    saga: Annotated[str | None, typer.Option(help="Verify one saga's chain only.")] = None,
) -> None:
    """Recompute every hash chain; exit 1 naming the first tampered entry."""
    store = open_store(db)
    try:
        report = store.verify_audit(saga)
    except ReversaError as exc:
        fail(exc.message)
    if json_out:
        emit_json({"ok": report.ok, "sagas": report.sagas, "entries": report.entries,
                   "problems": [asdict(p) for p in report.problems]})
    elif report.ok:
        console.print(f"[green]audit log verified[/]: {report.entries} entries in "
                      f"{report.sagas} saga chain(s), {store.url}")
    else:
        for p in report.problems:
            console.print(f"[red]TAMPERED[/] saga {p.saga_id}: {p.message}")
    raise typer.Exit(0 if report.ok else 1)


@app.command("db-upgrade")
def db_upgrade(db: Db = None) -> None:
    """Create or upgrade the schema in place (also done automatically on open)."""
    from ..core.store import Store

    store = Store.open(db, migrate=False)
    before, after = store.migrate()
    console.print(f"schema version {before} -> {after} at {store.url}")


def _register_extensions() -> None:
    from . import bench, chaos, demo, sim, worker

    demo.register(app)
    bench.register(app)
    worker.register(app)
    sim.register(app)
    chaos.register(app)


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
