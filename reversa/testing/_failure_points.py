"""Rollback test helpers (AG-384 4.8): every failure point, forward and in compensation.

Typical use with pytest::

    from reversa.testing import failure_points, run_failure_point, expected_status

    @pytest.mark.parametrize("point", failure_points(SAGA), ids=str)
    def test_every_failure_point(engine, point):
        result = run_failure_point(engine, SAGA, point, input={...})
        assert result.status is expected_status(SAGA, point)
        assert ledger.balances() == BEFORE          # the domain's own end state

A failure point is a step's action failing, or one compensation failing while a
later step's failure is being rolled back. Faults are injected by wrapping the
registry, so the saga under test and its handlers are otherwise untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..core.engine import Engine
from ..core.errors import PermanentError, PlanError
from ..core.model import Reversibility, Saga
from ..core.plan import Plan
from ..core.registry import HandlerKind, Registry
from ..core.states import SagaStatus
from ..core.views import SagaResult

__all__ = [
    "FailurePoint",
    "InjectedFault",
    "expected_status",
    "failure_points",
    "inject",
    "run_failure_point",
]


class InjectedFault(PermanentError):
    """The fault ``reversa.testing`` injects at a failure point."""

    default_code = "injected_fault"


@dataclass(frozen=True, slots=True)
class FailurePoint:
    """Where a fault is injected.

    Attributes:
        step: The step whose call fails.
        phase: ``action`` (the forward call) or ``compensation`` (its undo,
            or forward recovery for an irreversible step).
        trigger: For compensation points, the step whose action fails to start
            the rollback (the last step in plan order).
    """

    step: str
    phase: Literal["action", "compensation"]
    trigger: str | None = None

    def __str__(self) -> str:
        return f"{self.phase}:{self.step}"


def failure_points(saga: Saga) -> list[FailurePoint]:
    """Every action, and every compensation a rollback would run, of ``saga``."""
    plan = _plan(saga)
    points = [FailurePoint(name, "action") for name in plan.order]
    last = plan.order[-1]
    for name in plan.order[:-1]:
        spec = plan.step(name)
        undoable = spec.compensation is not None or spec.forward_recovery is not None
        if undoable:
            points.append(FailurePoint(name, "compensation", trigger=last))
    return points


def expected_status(saga: Saga, point: FailurePoint) -> SagaStatus:
    """The end state Reversa guarantees for ``point`` under the saga's policies.

    An action failure ends compensated, unless an irreversible step without
    forward recovery had already completed (then a human is needed). A failed
    compensation always ends escalated (AG-166 4.6, AG-384 4.2).
    """
    plan = _plan(saga)
    if point.phase == "compensation":
        return SagaStatus.ESCALATED
    before = plan.order[: plan.order.index(point.step)]
    for name in before:
        spec = plan.step(name)
        if spec.reversibility is Reversibility.IRREVERSIBLE and spec.forward_recovery is None:
            return SagaStatus.ESCALATED
    return SagaStatus.FAILED if not before else SagaStatus.COMPENSATED


def inject(registry: Registry, saga: Saga, point: FailurePoint) -> Registry:
    """A copy of ``registry`` whose handler at ``point`` raises :class:`InjectedFault`."""
    plan = _plan(saga)
    faulty = registry.merged()
    # Faults hit one step even when several steps share a handler.
    targets: list[tuple[HandlerKind, str, str, frozenset[str]]] = []
    spec = plan.step(point.step)
    if point.phase == "action":
        targets.append((HandlerKind.ACTION, spec.action, spec.name, frozenset({"action"})))
    else:
        undo = frozenset({"compensation", "forward_recovery"})
        if spec.compensation is not None:
            targets.append((HandlerKind.COMPENSATION, spec.compensation, spec.name, undo))
        if spec.forward_recovery is not None:
            targets.append((HandlerKind.ACTION, spec.forward_recovery, spec.name, undo))
        trigger = plan.step(point.trigger or plan.order[-1])
        targets.append((HandlerKind.ACTION, trigger.action, trigger.name,
                        frozenset({"action"})))
    for kind, name, step, phases in targets:
        original = faulty._handlers[kind][name]
        faulty._handlers[kind][name] = _raiser(kind, name, original, step, phases)
    return faulty


def run_failure_point(
    engine: Engine,
    saga: Saga,
    point: FailurePoint,
    input: Mapping[str, Any] | None = None,
) -> SagaResult:
    """Run ``saga`` with a fault injected at ``point`` on a sibling of ``engine``.

    The sibling shares the engine's store, clock and services, so every record
    lands where the test can inspect it.
    """
    sibling = Engine(inject(engine.registry, saga, point), engine.store, clock=engine.clock,
                     services=engine.services, owner=engine.owner + ":fault",
                     lease_s=engine.lease_s, heartbeat=False)
    try:
        return sibling.run(saga, input)
    finally:
        sibling.close()


def _raiser(
    kind: HandlerKind, name: str, original: Callable[..., Any], step: str,
    phases: frozenset[str],
) -> Callable[..., Any]:
    def fail(ctx: Any) -> Any:
        if ctx.step == step and str(ctx.phase) in phases:
            raise InjectedFault(f"injected fault in {kind} {name!r} (step {ctx.step!r})")
        return original(ctx)  # the same handler serving another step runs normally

    fail.__wrapped__ = original  # type: ignore[attr-defined]
    return fail


def _plan(saga: Saga) -> Plan:
    try:
        return Plan.from_json(_canonical(saga))
    except PlanError:
        raise
    except Exception as exc:  # pragma: no cover - defensive
        raise PlanError(f"cannot enumerate failure points of {saga.workflow!r}: {exc}") from exc


def _canonical(saga: Saga) -> str:
    from ..core.canonical import canonical_json
    from ..core.plan import PLAN_FORMAT

    return canonical_json({"format": PLAN_FORMAT, "saga": saga.model_dump(mode="json")})
