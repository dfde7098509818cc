"""Operator-initiated rollback, as the saga's owner sees it.

``Engine.request_rollback`` flags a running saga whose owner is alive (the
``rollback_requested`` column). Every commit of the owner reads the flag back,
so the owner meets it at its next step boundary and acts on it here: rolls the
saga back, holds it (``awaiting_approval``) while a required approval is
pending, or runs on when that approval was rejected meanwhile. Whatever it
does, the request -- who asked, why, and every decision on it -- goes into the
saga's audit chain in the same commit as the saga's next state.
"""

from __future__ import annotations

from typing import Any

from ..live import LiveSaga
from ..states import SagaStatus
from ..store.governance import DecideApproval, approval_row
from .rollback import decisions_of, log_request, rollback, take_request
from .runtime import Runtime

__all__ = ["on_request", "operator_rollback"]


def _log_decisions(live: LiveSaga, row: dict[str, Any]) -> None:
    # Decisions made while the owner was busy reach the chain now.
    for d in decisions_of(row):
        live.log("approval_decided", d["verdict"], approval=row["id"], kind=row["kind"],
                 by=d["by"], note=d.get("note", ""), decided_at=d.get("at"))


async def on_request(rt: Runtime, live: LiveSaga) -> bool:
    """Act on the pending rollback request of a saga this process owns.

    Returns:
        True when the forward run goes on (the request's approval was rejected).
    """
    request = take_request(live)
    approval_id = request.get("approval")
    row = approval_row(rt.store, int(approval_id)) if approval_id is not None else None
    status = row["status"] if row is not None else "none"
    if row is not None and status == "pending":
        log_request(live, request, "awaiting_approval")
        if live.status is not SagaStatus.COMPLETED:
            # Held at this boundary: nothing moves until the approval is decided.
            live.move(SagaStatus.AWAITING_APPROVAL)
        await rt.flush(live)
        return False
    if row is not None and status != "approved":
        log_request(live, request, status)
        _log_decisions(live, row)
        await rt.flush(live)
        return live.status is SagaStatus.RUNNING
    log_request(live, request, "rolling_back")
    if row is not None:
        _log_decisions(live, row)
        live.side.append(DecideApproval(
            row["id"], row["version"], live.id, live.plan.saga.workflow, row["kind"],
            "executed", decisions_of(row), decided=True,
            outcome=f"the owner ({rt.owner}) rolled the saga back"))
    await operator_rollback(rt, live, request)
    return False


async def operator_rollback(rt: Runtime, live: LiveSaga, request: dict[str, Any]) -> None:
    """Roll the whole saga back for an operator (dry-run first, predicate after)."""
    live.failed_step = None
    live.error = f"rollback requested by {request.get('by')}: {request.get('reason')}"
    live.rollback_started_at = None
    await rollback(rt, live, requested={"by": request.get("by"),
                                        "reason": request.get("reason"),
                                        "approval": request.get("approval")})
