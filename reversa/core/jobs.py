"""The worker's continuous checks: rollback feasibility and reconciliation.

Both run inside :class:`~reversa.core.worker.Worker` rounds, each on its own
period, and both read only: they change no saga's state. What they find goes
to the worker's log (``reversa.worker``), to the saga's chain (an audit entry)
and, when a human must act, to an advisory escalation (``kind`` feasibility or
drift; ``reversa escalations list`` shows it, ``resolve --action
mark_resolved`` closes it). One saga's trouble (a missing handler, a service
down, a bad record) is logged and skipped: a job never stops the worker.

**Feasibility** (AG-384 advanced: "a continuous assessment of whether each
in-progress workflow step could be rolled back given current state"): for
every running or rolling-back saga, and every saga completed within the
horizon (a cascade may still roll it back), a dry-run now. It escalates before
a failure makes the rollback impossible: a precondition no longer holds, the
cost passed the workflow's limit, the compensations' promised (or measured)
latencies no longer fit the rollback window; and warns as the cost nears the
limit (``warn_fraction``), the window runs low, or an endpoint the rollback
needs breaches its availability SLA.

**Reconciliation** (AG-166 advanced: "automated reconciliation runs
continuously, detecting and resolving any drift"): every saga completed or
compensated within the horizon is compared with the real systems
(:mod:`reversa.core.engine.reconcile`); a disagreement opens a drift
escalation naming the steps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .engine import Engine
from .errors import ReversaError
from .model import Saga
from .sla import EndpointReport, report

__all__ = ["Feasibility", "FeasibilityFinding", "Reconcile"]

log = logging.getLogger("reversa.worker")

LogFn = Callable[..., None]


@dataclass
class FeasibilityFinding:
    """What the feasibility check found for one saga.

    Attributes:
        severity: ``ok``, ``warning`` or ``escalation``.
        reasons: Why, one line each.
        escalation: The advisory escalation opened (None if none, or one was open).
    """

    saga_id: str
    workflow: str
    status: str
    severity: str = "ok"
    reasons: list[str] = field(default_factory=list)
    escalation: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"saga_id": self.saga_id, "workflow": self.workflow, "status": self.status,
                "severity": self.severity, "reasons": list(self.reasons),
                "escalation": self.escalation}


class Feasibility:
    """The continuous feasibility check over one store.

    Args:
        engine: An engine with the workflows' handlers and services.
        horizon_s: Completed sagas are assessed this long after they ended.
        warn_fraction: Warn when a cost reaches this fraction of its limit, or
            this fraction of a rolling-back saga's window is used.
        limit: Sagas assessed per pass (the most recently active first).
    """

    def __init__(self, engine: Engine, *, horizon_s: float = 3600.0,
                 warn_fraction: float = 0.8, limit: int = 200) -> None:
        self.engine = engine
        self.horizon_s = horizon_s
        self.warn_fraction = warn_fraction
        self.limit = limit
        self._told: dict[str, tuple[str, ...]] = {}  # saga -> reasons last recorded

    def run(self, on_error: LogFn | None = None) -> list[FeasibilityFinding]:
        """One pass; returns a finding per saga assessed (errors go to ``on_error``)."""
        rel = self.engine.store.relations
        now = self.engine.clock.now()
        rows = rel.recent(["completed"], now - self.horizon_s, limit=self.limit,
                          live=["running", "compensating"])
        endpoints = {r.endpoint: r for r in report(rel.sla_calls(now - self.horizon_s))}
        out = []
        for row in rows:
            try:
                out.append(self.assess(row, endpoints, now))
            except Exception as exc:  # one saga's trouble never stops the pass
                if on_error is not None:
                    on_error(row["id"], exc)
        return out

    def assess(self, row: dict[str, Any], endpoints: dict[str, EndpointReport],
               now: float) -> FeasibilityFinding:
        """Assess one saga (``row`` from ``Relations.recent``)."""
        sid = row["id"]
        saga = Saga.model_validate(_plan(row)["saga"])
        found = FeasibilityFinding(sid, row["workflow"], row["status"])
        dry = self.engine.dry_run(sid)
        escalate: list[str] = [f"rollback infeasible now: {p}" for p in dry.problems]
        warn: list[str] = []
        for unit, limit in saga.max_rollback_cost.items():
            cost = dry.total_costs.get(unit, 0.0)
            if self.warn_fraction * limit <= cost <= limit:
                warn.append(f"rollback cost {cost:.6g} {unit} is {cost / limit:.0%} of the "
                            f"limit {limit:.6g} {unit}")
        expected = 0.0
        for finding in dry.steps:
            if finding.compensation is None or finding.action == "escalate":
                continue
            sla = self.engine.registry.sla(finding.compensation)
            measured = endpoints.get(finding.compensation)
            if sla is not None:
                expected += max(sla.latency_s, measured.latency_p95_s if measured else 0.0)
            if measured is not None and measured.availability < measured.promised_availability:
                warn.append(f"compensation endpoint {finding.compensation} of step "
                            f"{finding.step!r} breaches its SLA: {measured.breaches[0]}")
        window = saga.rollback_window_s
        if row["status"] == "compensating" and row["rollback_started_at"] is not None:
            left = row["rollback_started_at"] + window - now
            if expected > left:
                escalate.append(f"the remaining compensations promise {expected:g}s but "
                                f"{max(left, 0):.1f}s of the rollback window are left")
            elif left < (1 - self.warn_fraction) * window:
                warn.append(f"{max(left, 0):.1f}s of the {window:g}s rollback window left")
        elif expected > window:
            escalate.append(f"the compensations' endpoints promise {expected:g}s in all, more "
                            f"than the {window:g}s rollback window")
        found.reasons = escalate + warn
        found.severity = "escalation" if escalate else "warning" if warn else "ok"
        self._record(found, dry.to_dict())
        return found

    def _record(self, found: FeasibilityFinding, dry: dict[str, Any]) -> None:
        sid = found.saga_id
        told = tuple(found.reasons)
        if self._told.get(sid, ()) == told:
            return  # nothing new since the last pass
        self._told[sid] = told
        rel = self.engine.store.relations
        if found.severity == "ok":
            return
        if found.severity == "escalation":
            # The escalation and its entry in the saga's chain are one write.
            found.escalation = rel.open_advisory(
                sid, "feasibility",
                "rollback feasibility degraded before any failure: " + "; ".join(found.reasons),
                {"reasons": found.reasons, "status": found.status, "dry_run": dry})
        else:
            rel.note(sid, "feasibility_warning", "warning", {"reasons": found.reasons})


class Reconcile:
    """The continuous reconciliation over one store.

    Args:
        engine: An engine with the workflows' handlers and services.
        horizon_s: Sagas completed or compensated within this long are checked.
        limit: Sagas checked per pass (the most recently ended first).
    """

    def __init__(self, engine: Engine, *, horizon_s: float = 86_400.0, limit: int = 200) -> None:
        self.engine = engine
        self.horizon_s = horizon_s
        self.limit = limit

    def run(self, on_error: LogFn | None = None) -> list[dict[str, Any]]:
        """One pass; returns what was found per saga checked (errors go to ``on_error``)."""
        rel = self.engine.store.relations
        now = self.engine.clock.now()
        out = []
        for row in rel.recent(["completed", "compensated"], now - self.horizon_s,
                              limit=self.limit):
            try:
                found = self.engine.reconcile(row["id"]).to_dict()
            except (ReversaError, Exception) as exc:
                if on_error is not None:
                    on_error(row["id"], exc)
                continue
            if found["drift"]:
                steps = ", ".join(sorted({d["step"] for d in found["drift"]}))
                found["escalation"] = rel.open_advisory(
                    row["id"], "drift",
                    f"the real systems disagree with the record of this {row['status']} "
                    f"saga at step(s) {steps}: " + "; ".join(
                        f"{d['step']}: {d['observed']}" for d in found["drift"]), found)
            out.append(found)
        return out


def _plan(row: dict[str, Any]) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(row["plan_json"])
    return data
