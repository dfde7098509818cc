"""What must hold after every schedule, checked against what the services actually did.

The store says what Reversa believes; the services' effect logs say what
happened. Each check compares the two, or holds the store to its own audit chain:

- ``ends``: every saga ends completed, compensated, failed (nothing to undo),
  escalated or resolved; none is left running.
- ``no_effect_stands``: no effect stands in a compensated (or failed) saga, except
  what a checkpoint kept and what forward recovery completed another way.
- ``compensation_once``: no effect was undone (or forward-recovered) twice.
- ``rows_match_services``: a step recorded completed has its effect in place once;
  one recorded compensated, skipped or not run has none.
- ``no_orphan_effect``: no effect belongs to a saga the store has no record of.
- ``escalation_report``: every escalation carries a full report.
- ``escalation_reachable``: an escalated saga has exactly one open escalation (a
  human can act on it); a resolved one has its resolution recorded.
- ``audit_verifies`` and ``rows_agree_with_chain``: every chain verifies and the
  rows say what the chain says.

Process-level ones (``no_worker_died``, ``no_unexpected_error``, ``deadlock``) are
recorded by the simulation while it runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...core.context import idempotency_key
from ...core.store import Store
from .faults import SagaPlan
from .packs import Effects

__all__ = ["INVARIANTS", "Violation", "check"]

INVARIANTS = ("ends", "no_effect_stands", "compensation_once", "rows_match_services",
              "no_orphan_effect", "escalation_report", "escalation_reachable",
              "audit_verifies", "rows_agree_with_chain", "no_worker_died",
              "no_unexpected_error", "deadlock")

AT_REST = {"completed", "compensated", "failed", "escalated", "resolved"}
UNDONE_OK = {"compensated", "failed"}
REPORT_KEYS = {"reason", "saga", "steps", "pre_state", "current_state"}


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken guarantee.

    Attributes:
        invariant: Which check (one of :data:`INVARIANTS`).
        saga: The saga concerned, if one.
        detail: What was found.
    """

    invariant: str
    saga: str | None
    detail: str

    def __str__(self) -> str:
        where = f" [{self.saga}]" if self.saga else ""
        return f"{self.invariant}{where}: {self.detail}"


def check(store: Store, plans: Mapping[str, SagaPlan], effects: Mapping[str, Effects],
          tables: Mapping[str, list[dict[str, Any]]] | None = None) -> list[Violation]:
    """Every invariant over the final store and the services' effect logs.

    Args:
        store: The simulation's store, after the run (its audit chains are
            verified with :meth:`~reversa.core.store.Store.verify_audit`).
        plans: The planned sagas by id.
        effects: Each pack's effect log, by pack name.
        tables: The rows of ``sagas``, ``steps``, ``escalations`` and ``audit``
            when already read (default: read through ``store``).
    """
    if tables is None:
        tables = {name: store.rows(name) for name in ("sagas", "steps", "escalations", "audit")}
    out: list[Violation] = []
    sagas = {r["id"]: r for r in tables["sagas"]}
    steps: dict[str, list[dict[str, Any]]] = {}
    for row in tables["steps"]:
        steps.setdefault(row["saga_id"], []).append(row)
    escalations: dict[str, list[dict[str, Any]]] = {}
    for row in tables["escalations"]:
        escalations.setdefault(row["saga_id"], []).append(row)
    audit: dict[str, list[dict[str, Any]]] = {}
    for row in tables["audit"]:
        audit.setdefault(row["saga_id"], []).append(row)
    for pack_log in effects.values():
        for key, (saga, step) in pack_log.applied.items():
            if saga not in sagas:
                out.append(Violation("no_orphan_effect", saga,
                                     f"effect {key} of step {step!r} happened, but the store "
                                     "has no record of its saga"))
        for key, n in (pack_log.undone + pack_log.recovered).items():
            if n > 1:
                out.append(Violation("compensation_once", pack_log.applied.get(key, ("?",))[0],
                                     f"the effect {key} was undone or recovered {n} times"))
    for sid, row in sagas.items():
        plan = plans.get(sid)
        log = effects.get(plan.pack) if plan is not None else None
        if row["status"] not in AT_REST:
            out.append(Violation("ends", sid, f"left {row['status']} (owner "
                                 f"{row['lease_owner']}, failed step {row['failed_step']})"))
        if log is not None:
            out.extend(_effects(sid, row, steps.get(sid, []), log))
        out.extend(_escalations(sid, row, escalations.get(sid, []), steps.get(sid, [])))
        out.extend(_chain(sid, row, steps.get(sid, []), audit.get(sid, [])))
    report = store.verify_audit()
    out.extend(Violation("audit_verifies", p.saga_id, p.message) for p in report.problems)
    return out


def _effects(sid: str, row: Mapping[str, Any], steps: list[dict[str, Any]], log: Effects
             ) -> list[Violation]:
    out = []
    applied: dict[str, list[str]] = {}
    for key, (saga, step) in log.applied.items():
        if saga == sid:
            applied.setdefault(step, []).append(key)
    for st in steps:
        name, status, outcome = st["name"], st["status"], st["outcome"] or ""
        current = idempotency_key(sid, name, "action", st["generation"])
        standing = sorted(k for k in applied.get(name, []) if log.standing(k))
        kept = status == "completed" or (status == "compensated"
                                          and outcome == "forward_recovered")
        if kept:
            if standing != [current]:
                out.append(Violation("rows_match_services", sid,
                                     f"step {name!r} is recorded {status} ({outcome}) but the "
                                     f"effects standing at the service are {standing}"))
            if outcome == "forward_recovered" and log.recovered[current] != 1:
                out.append(Violation("rows_match_services", sid,
                                     f"step {name!r} is recorded forward-recovered but the "
                                     f"service applied {log.recovered[current]} recoveries"))
        elif standing and (status in ("compensated", "skipped", "pending") or (
                status == "failed" and not outcome.startswith("in_doubt"))):
            name_of = ("no_effect_stands" if row["status"] in UNDONE_OK
                       else "rows_match_services")
            out.append(Violation(name_of, sid,
                                 f"step {name!r} is recorded {status} ({outcome or '-'}) "
                                 f"but its effect stands at the service: {standing}"))
    return out


def _escalations(sid: str, row: Mapping[str, Any], rows: list[dict[str, Any]],
                 steps: list[dict[str, Any]]) -> list[Violation]:
    out = []
    for esc in rows:
        report = json.loads(esc["report_json"])
        missing = REPORT_KEYS - set(report)
        reported = {s.get("step") for s in report.get("steps", [])}
        if missing or not esc["reason"] or reported != {s["name"] for s in steps} or any(
                "status" not in s or "effect_remains" not in s for s in report["steps"]):
            shown = sorted(map(str, reported))
            out.append(Violation("escalation_report", sid,
                                 f"escalation #{esc['id']} report is incomplete (missing "
                                 f"{sorted(missing)}, steps reported {shown})"))
    open_ = [e for e in rows if e["status"] == "open"]
    if row["status"] == "escalated" and len(open_) != 1:
        out.append(Violation("escalation_reachable", sid,
                             f"the saga is escalated with {len(open_)} open escalation(s): no "
                             "worker, watchdog or human can reach it" if not open_ else
                             f"the saga is escalated with {len(open_)} open escalations"))
    if row["status"] != "escalated" and open_:
        out.append(Violation("escalation_reachable", sid,
                             f"the saga is {row['status']} but escalation #{open_[0]['id']} "
                             "is still open"))
    if row["status"] == "resolved" and not any(
            e["status"] == "resolved" and e["resolution"] == "mark_resolved" and e["resolved_by"]
            for e in rows):
        out.append(Violation("escalation_reachable", sid,
                             "the saga is resolved but no escalation records who resolved it"))
    return out


_STATUS_EVENTS = {"plan_recorded": "running", "saga_resumed": "running",
                  "saga_running": "running", "rollback_started": "compensating",
                  "saga_completed": "completed", "saga_compensated": "compensated",
                  "saga_failed": "failed", "escalated": "escalated"}


def _chain(sid: str, row: Mapping[str, Any], steps: list[dict[str, Any]],
           entries: list[dict[str, Any]]) -> list[Violation]:
    out = []
    derived = None
    for entry in sorted(entries, key=lambda e: e["seq"]):
        event = entry["event"]
        if event == "escalation_resolved":
            derived = "resolved" if entry["outcome"] == "mark_resolved" else "compensating"
        elif event in _STATUS_EVENTS:
            derived = _STATUS_EVENTS[event]
    if row["status"] in AT_REST and derived != row["status"]:
        out.append(Violation("rows_agree_with_chain", sid,
                             f"the row says {row['status']} but the chain's last status "
                             f"event says {derived}"))
    done = {(e["step"], e["event"]) for e in entries}
    for st in steps:
        name = st["name"]
        if st["status"] == "compensated" and not (
                (name, "compensation_completed") in done
                or (name, "forward_recovery_completed") in done):
            out.append(Violation("rows_agree_with_chain", sid,
                                 f"step {name!r} is recorded compensated but its chain has no "
                                 "completed compensation or recovery"))
        if st["status"] == "completed" and not (
                (name, "step_completed") in done or (name, "in_doubt_resolved") in done):
            out.append(Violation("rows_agree_with_chain", sid,
                                 f"step {name!r} is recorded completed but its chain has no "
                                 "completion"))
    return out
