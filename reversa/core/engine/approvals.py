"""Approvals, four-eyes resolutions and operator rollbacks (the engine's governance half).

Every decision is recorded twice in one commit: in its approval row and in the
saga's audit chain, together with the saga's transition (and the outbox row
announcing it). The chain can only be appended by whoever holds the saga's
lease, so each operation claims the saga first; a saga a live process holds
(a running one) is reached through its rollback flag instead, and its owner
records the request and the decisions when it acts on them (see
:mod:`.operator`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, LeaseLost, NotFound, ReversaError
from ..governance import Approval, ApprovalKind, FourEyes, policy_for
from ..inspector import Inspector
from ..live import LiveSaga
from ..model import Saga
from ..states import AT_REST_SAGA, SagaStatus, StepStatus
from ..store.governance import (
    DecideApproval,
    NewApproval,
    approval_row,
    decide_alone,
    flag_rollback,
)
from ..views import SagaResult
from .operator import operator_rollback
from .rollback import decisions_of, log_request, take_request

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .engine import Engine

__all__ = ["Governor"]

_ACTIONS = ("retry", "forward_recovery", "mark_resolved")


class Governor:
    """The governance operations of one :class:`Engine` (it calls these)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store

    # -- helpers ----------------------------------------------------------------------
    def _now(self) -> float:
        return self.engine.clock.now()

    def _claim_at(self, saga_id: str, *, handlers: bool) -> LiveSaga | None:
        """Claim the saga whatever its status; None when a live process holds it."""
        seen = None
        for _ in range(3):
            row, _steps = self.store.load(saga_id)
            status = SagaStatus(row["status"])
            if status == seen:
                return None  # same status, lease still held: a live owner has it
            seen = status
            claimed = self.store.claim(self.engine.owner, self.engine.lease_s,
                                       saga_id=saga_id, statuses=[status])
            if claimed:
                live = self.engine._load_claimed(saga_id, claimed[0][1], handlers=handlers)
                tampered = self.engine._tampered.pop(saga_id, None)
                if tampered is not None:
                    self.store.release(saga_id, live.token)
                    raise tampered
                return live
        return None

    def _commit(self, live: LiveSaga) -> None:
        """Write what was queued on a claimed saga, and give its lease back."""
        self.store.flush(live, self._now())
        if live.status not in AT_REST_SAGA:
            self.store.release(live.id, live.token)

    def _view(self, approval_id: int) -> Approval:
        return Inspector(self.store).approval(approval_id)

    def _needs(self, workflow: str, saga_id: str, input: Mapping[str, Any]) -> str | None:
        policy: FourEyes | None = policy_for(self.engine.governance, workflow)
        if policy is None:
            return None
        return policy.applies(input, _rollback_costs(self.store, saga_id))

    @staticmethod
    def _identity(by: str, what: str) -> str:
        if not by or not by.strip():
            raise ConfigError(f"{what} needs an identity (by=...): who is responsible")
        return by.strip()

    # -- start ------------------------------------------------------------------------
    async def submit(self, saga: Saga, input: Mapping[str, Any] | None, *, by: str,
                     approval_reason: str | None, saga_id: str | None,
                     required: int) -> SagaResult | Approval:
        by = self._identity(by, "submitting a saga")
        if approval_reason is None:
            return await self.engine._run(saga, input, saga_id=saga_id, by=by)
        if not approval_reason.strip():
            raise ConfigError("approval_reason is empty; say why the start needs approval")
        if required < 1:
            raise ConfigError(f"required={required}; an approval needs at least 1 approver")
        live = self.engine._new(saga, input, saga_id, SagaStatus.AWAITING_APPROVAL)
        self.engine._log_plan(live, by)
        live.log("approval_requested", "pending", kind=ApprovalKind.START.value, by=by,
                 reason=approval_reason, required=required)
        new = NewApproval(ApprovalKind.START.value, live.id, live.plan.saga.workflow, by,
                          approval_reason, {}, required, events=[live.events[-1]])
        live.side.append(new)
        self.store.flush(live, self._now())
        assert new.id is not None  # set inside the commit
        return self._view(new.id)

    async def run_approved(self, saga_id: str) -> SagaResult:
        from .recovery import continue_saga

        claimed = self.store.claim(self.engine.owner, self.engine.lease_s, saga_id=saga_id,
                                   statuses=[SagaStatus.APPROVED])
        if not claimed:
            row, _ = self.store.load(saga_id)
            raise ConfigError(f"saga {saga_id} is {row['status']}, not approved (or a worker "
                              "is starting it now); nothing to run")
        live = self.engine._load_claimed(saga_id, claimed[0][1])
        return await self.engine._drive(live, self.engine._guard(
            live, lambda: continue_saga(self.engine._rt, live, reason="approved")))

    # -- resolutions ------------------------------------------------------------------
    async def resolve(self, escalation_id: int, *, action: str, author: str,
                      note: str) -> SagaResult | Approval:
        if action not in _ACTIONS:
            raise ConfigError(f"unknown resolution {action!r}; use one of {', '.join(_ACTIONS)}")
        if not author.strip():
            raise ConfigError("a resolution needs an author (who takes responsibility)")
        rows = self.store.rows("escalations", id=escalation_id)
        if not rows or rows[0]["status"] != "open":
            raise NotFound(f"no open escalation #{escalation_id}; list them with "
                           "`reversa escalations list`")
        saga_id = rows[0]["saga_id"]
        for row in self.store.rows("approvals", saga_id=saga_id, kind="resolution"):
            payload = json.loads(row["payload_json"])
            if row["status"] == "pending" and payload.get("escalation") == escalation_id:
                raise ConfigError(
                    f"a resolution of escalation #{escalation_id} ({payload.get('action')} by "
                    f"{row['requested_by']}) is waiting for approval #{row['id']}; approve or "
                    f"reject it with `reversa approvals approve|reject {row['id']}`")
        saga_row, _ = self.store.load(saga_id)
        why = self._needs(saga_row["workflow"], saga_id, json.loads(saga_row["input_json"]))
        # mark_resolved runs no handler, so it must not need the workflow's code.
        live = self.engine._claim(saga_id, handlers=why is None and action != "mark_resolved")
        if live.status is not SagaStatus.ESCALATED:
            self.engine._release(live)
            raise ConfigError(f"saga {live.id} is {live.status}, not escalated")
        tampered = self.engine._tampered.pop(live.id, None)
        if tampered is not None and action != "mark_resolved":
            self.store.release(live.id, live.token)
            raise tampered
        if why is None:
            return await self.engine._resolve_claimed(live, escalation_id, action, author, note)
        payload = {"escalation": escalation_id, "action": action, "note": note}
        live.log("approval_requested", "pending", kind=ApprovalKind.RESOLUTION.value,
                 by=author, reason=why, required=1, **payload)
        new = NewApproval(ApprovalKind.RESOLUTION.value, live.id, live.plan.saga.workflow,
                          author, why, payload, 1, events=[live.events[-1]])
        live.side.append(new)
        self._commit(live)
        assert new.id is not None
        return self._view(new.id)

    # -- decisions --------------------------------------------------------------------
    def _decision(self, approval_id: int, by: str, verdict: str,
                  note: str) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
        row = approval_row(self.store, approval_id)
        if row["status"] != "pending":
            raise ConfigError(f"approval #{approval_id} is already {row['status']}; list "
                              "pending ones with `reversa approvals list`")
        decisions = decisions_of(row)
        if verdict == "approved":
            if by == row["requested_by"]:
                raise ConfigError(f"four-eyes: {by} requested approval #{approval_id} and "
                                  "cannot approve it; a different identity must")
            if any(d["by"] == by and d["verdict"] == "approved" for d in decisions):
                raise ConfigError(f"four-eyes: {by} already approved #{approval_id}; the next "
                                  "approval must come from a different identity")
        decisions.append({"by": by, "at": self._now(), "verdict": verdict, "note": note})
        approvers = {d["by"] for d in decisions if d["verdict"] == "approved"}
        final = verdict == "rejected" or len(approvers) >= int(row["required"])
        return row, decisions, final

    def _decide(self, row: dict[str, Any], decisions: list[dict[str, Any]], status: str,
                decided: bool, outcome: str | None) -> DecideApproval:
        return DecideApproval(row["id"], row["version"], row["saga_id"], row["workflow"],
                              row["kind"], status, decisions, decided, outcome)

    def _log_decision(self, live: LiveSaga, row: dict[str, Any], decision: dict[str, Any],
                      status: str) -> None:
        live.log("approval_decided", decision["verdict"], approval=row["id"], kind=row["kind"],
                 by=decision["by"], note=decision["note"], status=status)

    async def approve(self, approval_id: int, *, by: str, note: str) -> Approval:
        by = self._identity(by, "an approval")
        row, decisions, final = self._decision(approval_id, by, "approved", note)
        kind = ApprovalKind(row["kind"])
        if not final:
            await self._record_only(row, decisions, "pending")
        elif kind is ApprovalKind.START:
            await self._start_decided(row, decisions, approved=True)
        elif kind is ApprovalKind.RESOLUTION:
            await self._execute_resolution(row, decisions)
        else:
            await self._execute_rollback(row, decisions)
        return self._view(approval_id)

    async def reject(self, approval_id: int, *, by: str, note: str) -> Approval:
        by = self._identity(by, "a rejection")
        if not note or not note.strip():
            raise ConfigError("a rejection needs a note saying why (note=...)")
        row, decisions, _ = self._decision(approval_id, by, "rejected", note)
        kind = ApprovalKind(row["kind"])
        if kind is ApprovalKind.START:
            await self._start_decided(row, decisions, approved=False)
            return self._view(approval_id)
        live = self._claim_at(row["saga_id"], handlers=False)
        decide = self._decide(row, decisions, "rejected", True, None)
        if live is None:
            # A running saga whose owner has not reached the flag yet: the owner
            # records the request and this rejection when it does, and runs on.
            decide_alone(self.store, decide)
            return self._view(approval_id)
        self._log_decision(live, row, decisions[-1], "rejected")
        live.side.append(decide)
        if kind is ApprovalKind.ROLLBACK:
            if live.rollback_request is not None:
                log_request(live, take_request(live), "rejected")
            if live.status is SagaStatus.AWAITING_APPROVAL:
                # Held at a step boundary for this approval: cleared to run on.
                live.move(SagaStatus.APPROVED)
        self._commit(live)
        return self._view(approval_id)

    async def _record_only(self, row: dict[str, Any], decisions: list[dict[str, Any]],
                           status: str) -> None:
        decide = self._decide(row, decisions, status, False, None)
        live = self._claim_at(row["saga_id"], handlers=False)
        if live is None:
            decide_alone(self.store, decide)
            return
        self._log_decision(live, row, decisions[-1], status)
        live.side.append(decide)
        self._commit(live)

    async def _start_decided(self, row: dict[str, Any], decisions: list[dict[str, Any]], *,
                             approved: bool) -> None:
        live = self._claim_at(row["saga_id"], handlers=False)
        if live is None or live.status is not SagaStatus.AWAITING_APPROVAL:
            if live is not None:
                self.store.release(live.id, live.token)
            raise ConfigError(f"saga {row['saga_id']} is no longer awaiting approval; "
                              "nothing to decide")
        status = "approved" if approved else "rejected"
        self._log_decision(live, row, decisions[-1], status)
        if approved:
            live.move(SagaStatus.APPROVED)
            outcome = "cleared to run: any worker (or Engine.run_approved) starts it"
        else:
            live.move(SagaStatus.REJECTED)
            live.error = f"start rejected by {decisions[-1]['by']}: {decisions[-1]['note']}"
            live.log("saga_rejected", "ok", by=decisions[-1]["by"], note=decisions[-1]["note"])
            outcome = "the saga ended rejected; nothing ran"
        live.side.append(self._decide(row, decisions, status, True, outcome))
        self._commit(live)

    async def _execute_resolution(self, row: dict[str, Any],
                                  decisions: list[dict[str, Any]]) -> None:
        payload = json.loads(row["payload_json"])
        action = payload["action"]
        live = self._claim_at(row["saga_id"], handlers=action != "mark_resolved")
        escalation = self.store.rows("escalations", id=payload["escalation"])
        open_ = bool(escalation) and escalation[0]["status"] == "open"
        if live is None or live.status is not SagaStatus.ESCALATED or not open_:
            if live is not None:
                self.store.release(live.id, live.token)
            raise ConfigError(f"escalation #{payload['escalation']} is no longer open (saga "
                              f"{row['saga_id']} moved on); approval #{row['id']} cannot run")
        self._log_decision(live, row, decisions[-1], "executed")
        approvers = list(dict.fromkeys(d["by"] for d in decisions if d["verdict"] == "approved"))
        live.side.append(self._decide(row, decisions, "executed", True,
                                      f"resolution {action} executed"))
        await self.engine._resolve_claimed(live, payload["escalation"], action,
                                           row["requested_by"], payload.get("note", ""),
                                           approved_by=approvers)

    # -- operator rollback ------------------------------------------------------------
    async def request_rollback(self, saga_id: str, *, by: str,
                               reason: str) -> SagaResult | Approval:
        by = self._identity(by, "a rollback request")
        if not reason or not reason.strip():
            raise ConfigError("a rollback request needs a reason (reason=...)")
        for _ in range(3):
            row, _steps = self.store.load(saga_id)
            status = SagaStatus(row["status"])
            _refuse(saga_id, status, self.store)
            why = await self._needs_for_rollback(row)
            if status is SagaStatus.COMPLETED:
                self._check_window(row)
            request = {"by": by, "reason": reason, "at": self._now()}
            live = self._claim_at(saga_id, handlers=why is None)
            if live is None:
                if status is not SagaStatus.RUNNING:
                    continue  # it moved meanwhile: look again
                approval = None if why is None else NewApproval(
                    ApprovalKind.ROLLBACK.value, saga_id, row["workflow"], by, why,
                    {"reason": reason}, 1)
                if flag_rollback(self.store, saga_id, request, approval) != "flagged":
                    continue
                if approval is not None:
                    assert approval.id is not None
                    return self._view(approval.id)
                return SagaResult(saga_id=saga_id, status=SagaStatus.RUNNING, results={},
                                  error=None)
            if live.status is not status:
                self.store.release(live.id, live.token)
                continue
            return await self._rollback_claimed(live, request, why)
        raise LeaseLost(f"saga {saga_id} kept changing while a rollback was requested; "
                        "look at it again and retry")

    async def _needs_for_rollback(self, row: dict[str, Any]) -> str | None:
        """Why an operator rollback of the saga in ``row`` needs a second approver.

        A saga that never rolled back has no recorded cost: when the policy sets
        a rollback-cost threshold, the rollback is dry-run now (nothing executes)
        and its estimate judged. An estimate that cannot be made needs the second
        approver too: the threshold exists because the cost may be high.
        """
        policy: FourEyes | None = policy_for(self.engine.governance, row["workflow"])
        if policy is None:
            return None
        input = json.loads(row["input_json"])
        costs = _rollback_costs(self.store, row["id"])
        why = policy.applies(input, costs)
        if why is not None or not policy.min_rollback_cost:
            return why
        try:
            report = await self.engine.dry_run_async(row["id"])
        except ReversaError as exc:
            return (f"four-eyes: the rollback's cost could not be estimated ({exc.message}); "
                    "a second approver decides")
        # Today's estimate supersedes one recorded by an earlier rollback.
        return policy.applies(input, {**costs, **report.costs})

    def _check_window(self, row: dict[str, Any]) -> None:
        window = float(json.loads(row["plan_json"])["saga"]["rollback_window_s"])
        age = self._now() - float(row["updated_at"])
        if age > window:
            raise ConfigError(
                f"saga {row['id']} completed {age:.0f}s ago, past its rollback window of "
                f"{window:g}s: it is no longer rolled back automatically; compensate by hand "
                "or start a compensating workflow")

    async def _rollback_claimed(self, live: LiveSaga, request: dict[str, Any],
                                why: str | None) -> SagaResult | Approval:
        if live.rollback_request is not None:
            take_request(live)  # superseded by this request, made by whoever claimed it
        if why is not None:
            new = NewApproval(ApprovalKind.ROLLBACK.value, live.id, live.plan.saga.workflow,
                              request["by"], why, {"reason": request["reason"]}, 1)
            log_request(live, request, "awaiting_approval")
            new.events.append(live.events[-1])
            live.log("approval_requested", "pending", kind=ApprovalKind.ROLLBACK.value,
                     by=request["by"], reason=why, required=1)
            new.events.append(live.events[-1])
            live.side.append(new)
            if live.status in (SagaStatus.RUNNING, SagaStatus.APPROVED):
                live.move(SagaStatus.AWAITING_APPROVAL)
            self._commit(live)
            assert new.id is not None
            return self._view(new.id)
        log_request(live, request, "rolling_back")
        return await self._roll_back(live, request)

    async def _roll_back(self, live: LiveSaga, request: dict[str, Any]) -> SagaResult:
        rt = self.engine._rt
        if all(s.status is StepStatus.PENDING for s in live.steps.values()):
            # Approved but never started: nothing to undo, and nothing will run.
            async def stop() -> None:
                live.move(SagaStatus.FAILED)
                live.error = (f"stopped by {request['by']} before any step ran: "
                              f"{request['reason']}")
                await rt.flush(live)

            return await self.engine._drive(live, stop)
        return await self.engine._drive(live, lambda: operator_rollback(rt, live, request))

    async def _execute_rollback(self, row: dict[str, Any],
                                decisions: list[dict[str, Any]]) -> None:
        payload = json.loads(row["payload_json"])
        saga_row, _ = self.store.load(row["saga_id"])
        status = SagaStatus(saga_row["status"])
        request = {"by": row["requested_by"], "reason": payload.get("reason"),
                   "approval": row["id"]}
        problem = None
        if status is SagaStatus.COMPLETED:
            try:
                self._check_window(saga_row)
            except ConfigError as exc:
                problem = exc.message
        elif status not in (SagaStatus.AWAITING_APPROVAL, SagaStatus.RUNNING,
                            SagaStatus.APPROVED):
            problem = f"saga {row['saga_id']} is {status.value}: nothing to roll back"
        live = self._claim_at(row["saga_id"], handlers=problem is None)
        if live is None:
            # Running, held by a live owner that has not met the flag yet: it rolls
            # back when it does, records these decisions, and marks this executed.
            decide_alone(self.store, self._decide(row, decisions, "approved", True,
                                                  "approved: the saga's owner rolls it back "
                                                  "at its next step boundary"))
            return
        if problem is not None:
            self._log_decision(live, row, decisions[-1], "failed")
            live.side.append(self._decide(row, decisions, "failed", True, problem))
            self._commit(live)
            return
        self._log_decision(live, row, decisions[-1], "executed")
        if live.rollback_request is not None:
            take_request(live)
        live.side.append(self._decide(row, decisions, "executed", True,
                                      "the operator rollback ran"))
        await self._roll_back(live, request)


def _refuse(saga_id: str, status: SagaStatus, store: Any) -> None:
    """Raise ConfigError naming why a saga in ``status`` cannot be rolled back now."""
    if status in (SagaStatus.RUNNING, SagaStatus.APPROVED, SagaStatus.COMPLETED):
        return
    if status is SagaStatus.AWAITING_APPROVAL:
        pending = [r["id"] for r in store.rows("approvals", saga_id=saga_id)
                   if r["status"] == "pending"]
        raise ConfigError(f"saga {saga_id} is awaiting approval {pending}: approve or reject "
                          "that first (`reversa approvals list`)")
    if status is SagaStatus.COMPENSATING:
        raise ConfigError(f"saga {saga_id} is already rolling back (compensating)")
    if status is SagaStatus.ESCALATED:
        raise ConfigError(f"saga {saga_id} is escalated: resolve its escalation instead "
                          "(`reversa escalations resolve ID --action retry` rolls it back)")
    raise ConfigError(f"saga {saga_id} is already {status.value}: nothing to roll back")


def _rollback_costs(store: Any, saga_id: str) -> dict[str, float]:
    """The cost estimates of the saga's last recorded rollback dry-run, per unit."""
    rows = store.rows("rollbacks", saga_id=saga_id)
    if not rows:
        return {}
    record = json.loads(rows[-1]["record_json"])
    costs = record.get("dry_run", {}).get("costs", {})
    return {str(k): float(v) for k, v in costs.items()}
