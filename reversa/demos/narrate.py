"""Tell the story of a saga from its durable record (shared by every demo)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..core.engine import Engine
from ..core.engine.inspect import audit_entries
from ..core.views import SagaResult

__all__ = ["tell"]


def tell(engine: Engine, result: SagaResult, console: Console) -> bool:
    """Print the timeline, rollback record, audit verification and record location.

    Returns:
        Whether the audit chain verified.
    """
    view = engine.inspect(result.saga_id)
    console.print(f"\n[bold]saga {view.id}[/] ({view.workflow}) ended [bold]{view.status}[/]")
    console.print(f"plan {view.plan_hash[:16]}… was recorded before step 1")
    timeline = Table(title="timeline (from the tamper-evident log)")
    for col in ("#", "step", "phase", "try", "event", "outcome", "detail"):
        timeline.add_column(col)
    t0 = None
    for e in audit_entries(engine.store, view.id):
        t0 = t0 if t0 is not None else e["ts"]
        detail = e["detail"].get("error") or e["detail"].get("decision") or \
            e["detail"].get("reason") or ""
        timeline.add_row(str(e["seq"]), e["step"] or "-", e["phase"], str(e["attempt"]),
                         e["event"], e["outcome"], str(detail)[:70])
    console.print(timeline)
    for rb in view.rollbacks:
        rec = rb.record
        order = [c["step"] for c in rec.get("compensations", [])]
        console.print(f"rollback: failed step [red]{rb.failed_step}[/], compensated in order "
                      f"{order}, outcome [bold]{rb.outcome}[/] in {rb.duration_s * 1000:.1f} ms")
        for finding in rec.get("dry_run", {}).get("steps", []):
            if finding.get("cost"):
                cost = finding["cost"]
                console.print(f"  cost estimate for {finding['step']}: {cost.get('amount')} "
                              f"{cost.get('unit')} ({cost.get('reason') or 'within policy'})")
        pred = rec.get("predicate", {})
        verdict = "[green]holds[/]" if pred.get("ok") else f"[red]{pred.get('ok')}[/]"
        console.print(f"consistency predicate: {verdict} — {pred.get('reason')}")
    for esc in view.escalations:
        console.print(f"[yellow]escalated to a human (#{esc.id})[/]: {esc.reason}")
        console.print(f"  review: reversa escalations show {esc.id} --db {engine.store.url}")
    report = engine.store.verify_audit(view.id)
    if report.ok:
        console.print(f"audit chain: [green]verified[/] ({report.entries} entries)")
    else:
        console.print(f"audit chain: [red]BROKEN[/] {report.problems[0].message}")
    console.print(f"record: {engine.store.url}\n  inspect: reversa sagas show {view.id} "
                  f"--db {engine.store.url}\n  verify:  reversa audit verify --db "
                  f"{engine.store.url}")
    return report.ok
