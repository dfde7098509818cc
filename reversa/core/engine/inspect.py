"""Assemble the full picture of one saga from its rows and its audit log."""

from __future__ import annotations

import json
from typing import Any

from ..store import Store
from ..views import AttemptView, EscalationView, RollbackView, SagaView, StepView

__all__ = ["audit_entries", "saga_view"]

_STARTS = {"step_started": "action", "compensation_started": "compensation",
           "forward_recovery_started": "forward_recovery"}
_ENDS = {"step_completed", "step_attempt_failed", "compensation_completed",
         "compensation_attempt_failed", "forward_recovery_completed",
         "forward_recovery_attempt_failed"}


def audit_entries(store: Store, saga_id: str) -> list[dict[str, Any]]:
    """The saga's log entries, in order, with details decoded."""
    rows = store.rows("audit", saga_id=saga_id)
    return [{**r, "detail": json.loads(r.pop("detail_json"))} for r in rows]


def saga_view(store: Store, saga_id: str) -> SagaView:
    """Build a :class:`SagaView` (every step, attempt, timestamp and outcome code)."""
    row, step_rows = store.load(saga_id)
    plan = json.loads(row["plan_json"])["saga"]
    specs = {s["name"]: s for s in plan["steps"]}
    history: dict[str, list[AttemptView]] = {r["name"]: [] for r in step_rows}
    open_calls: dict[tuple[str, str, int], float] = {}
    for entry in audit_entries(store, saga_id):
        step = entry["step"]
        if step is None or step not in history:
            continue
        key = (step, entry["phase"], entry["attempt"])
        if entry["event"] in _STARTS:
            open_calls[key] = entry["ts"]
        elif entry["event"] in _ENDS:
            history[step].append(AttemptView(
                phase=entry["phase"], attempt=entry["attempt"],
                started_at=open_calls.pop(key, None), finished_at=entry["ts"],
                outcome=entry["outcome"], error=entry["detail"].get("error")))
    for (step, phase, attempt), started in open_calls.items():
        history[step].append(AttemptView(phase=phase, attempt=attempt, started_at=started,
                                         finished_at=None, outcome="in_doubt"))
    steps = [
        StepView(
            name=r["name"], position=r["position"], status=r["status"],
            reversibility=specs[r["name"]]["reversibility"],
            depends_on=list(specs[r["name"]]["depends_on"]), attempts=r["attempts"],
            comp_attempts=r["comp_attempts"], outcome=r["outcome"], error=r["error"],
            result=_load(r["result_json"]), comp_result=_load(r["comp_result_json"]),
            started_at=r["started_at"], finished_at=r["finished_at"],
            comp_started_at=r["comp_started_at"], comp_finished_at=r["comp_finished_at"],
            history=history[r["name"]],
        )
        for r in step_rows
    ]
    rollbacks = [
        RollbackView(id=r["id"], saga_id=r["saga_id"], failed_step=r["failed_step"],
                     scope=r["scope"], outcome=r["outcome"], detected_at=r["detected_at"],
                     finished_at=r["finished_at"], duration_s=r["duration_s"],
                     predicate_ok=r["predicate_ok"], record=json.loads(r["record_json"]))
        for r in store.rows("rollbacks", saga_id=saga_id)
    ]
    escalations = [escalation_view(r) for r in store.rows("escalations", saga_id=saga_id)]
    return SagaView(
        id=row["id"], workflow=row["workflow"], status=row["status"],
        plan_hash=row["plan_hash"], plan=plan, input=json.loads(row["input_json"]),
        pre_state=_load(row["pre_state_json"]), created_at=row["created_at"],
        updated_at=row["updated_at"], failed_step=row["failed_step"], error=row["error"],
        checkpoint=row["checkpoint"], lease_owner=row["lease_owner"],
        lease_token=row["lease_token"], lease_expires_at=row["lease_expires_at"],
        audit_entries=row["audit_seq"], steps=steps, rollbacks=rollbacks,
        escalations=escalations,
    )


def escalation_view(r: dict[str, Any]) -> EscalationView:
    """Decode an escalation row."""
    return EscalationView(
        id=r["id"], saga_id=r["saga_id"], created_at=r["created_at"], reason=r["reason"],
        status=r["status"], report=json.loads(r["report_json"]), resolution=r["resolution"],
        resolved_by=r["resolved_by"], resolved_at=r["resolved_at"], note=r["note"])


def _load(text: Any) -> Any:
    return None if text is None else json.loads(text)
