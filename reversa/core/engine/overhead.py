"""Operational overhead of a rollback, added to its cost estimate (AG-384 advanced).

A rollback costs more than what its compensations' estimators report: the
people who review what it hands over, the fees of the calls it makes. The
estimate groups costs by kind and adds:

- **review**: the expected human review time per escalation class the dry-run
  foresees (``irreversible`` steps without forward recovery, ``in_doubt``
  steps nothing can settle, an ``infeasible`` rollback, ``dependents`` that
  block it) plus, for each compensation whose endpoint declares an SLA, the
  chance it is unavailable times the review of a ``compensation_failed``;
  priced at the workflow's ``review_rate`` when it declares one;
- **fees**: the workflow's fixed fee per compensation call;
- **fx**, **gas**, ...: what the estimators reported, by their ``kind``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..model import Saga
from ..registry import Registry

__all__ = ["review_classes", "with_overhead"]


def review_classes(findings: Iterable[Any], feasible: bool) -> list[tuple[str, str | None]]:
    """(escalation class, step) pairs a rollback with these findings hands to a human."""
    out: list[tuple[str, str | None]] = []
    for f in findings:
        if f.action == "escalate":
            out.append(("irreversible", f.step))
        elif f.action == "escalate_in_doubt":
            out.append(("in_doubt", f.step))
    if not feasible:
        out.append(("infeasible", None))
    return out


def with_overhead(
    saga: Saga,
    registry: Registry,
    findings: Iterable[Any],
    classes: list[tuple[str, str | None]],
) -> tuple[dict[str, Any], dict[str, float]]:
    """The overhead breakdown, and the total cost per unit including it."""
    policy = saga.overhead
    review: list[dict[str, Any]] = []
    for cls, step in classes:
        minutes = float(policy.review_minutes.get(cls, 0.0))
        review.append({"class": cls, "step": step, "minutes": minutes, "probability": 1.0})
    by_kind: dict[str, dict[str, float]] = {}
    calls = 0
    for f in findings:
        for est in f.costs:
            if "amount" in est:
                kind = str(est.get("kind") or "compensation")
                unit = str(est["unit"])
                by_kind.setdefault(kind, {})
                by_kind[kind][unit] = by_kind[kind].get(unit, 0.0) + float(est["amount"])
        if f.action not in ("compensate", "block_then_compensate", "probe_then_compensate"):
            continue
        calls += 1
        sla = registry.sla(f.compensation) if f.compensation else None
        if sla is not None and sla.availability < 1.0:
            minutes = float(policy.review_minutes.get("compensation_failed", 0.0))
            review.append({"class": "compensation_failed", "step": f.step, "minutes": minutes,
                           "probability": round(1.0 - sla.availability, 9)})
    expected = sum(r["minutes"] * r["probability"] for r in review)
    review_cost = {unit: round(rate * expected / 60.0, 6)
                   for unit, rate in policy.review_rate.items()}
    fees = {unit: round(fee * calls, 6) for unit, fee in policy.fees.items()}
    if review_cost:
        by_kind["review"] = dict(review_cost)
    if fees:
        by_kind["fee"] = _add(by_kind.get("fee", {}), fees)
    total: dict[str, float] = {}
    for amounts in by_kind.values():
        total = _add(total, amounts)
    return ({"review": review, "review_minutes": round(expected, 6),
             "review_cost": review_cost, "fees": fees, "calls": calls,
             "by_kind": by_kind}, total)


def _add(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    out = dict(a)
    for unit, amount in b.items():
        out[unit] = out.get(unit, 0.0) + amount
    return out
