"""Rollback test helpers (AG-384 4.8): every failure point, forward and in compensation.

Typical use with pytest (the plugin makes it shorter still: see docs/testing.md)::

    from reversa.testing import KINDS, expected_status, failure_points, run_failure_point

    @pytest.mark.parametrize("point", failure_points(SAGA, kinds=KINDS), ids=str)
    def test_every_failure_point(engine, point):
        result = run_failure_point(engine, SAGA, point, input={...})
        assert result.status is expected_status(SAGA, point)
        assert ledger.balances() == BEFORE          # the domain's own end state

A failure point is a step's action failing, or one compensation failing while a
later step's failure is being rolled back, in one of these ways (:data:`KINDS`):

- ``permanent``: the call is rejected (nothing happened);
- ``transient``: every attempt fails with a retryable error until retries run out;
- ``timeout``: every attempt times out and nothing happened (in doubt);
- ``lost_response``: the call happened but its answer is lost, every attempt (in doubt);
- ``crash_before``: the process dies after recording the call's intent, before the
  call; another process recovers the saga;
- ``crash_after``: the process dies after the call took effect, before recording it.

Faults are injected by wrapping the registry, so the saga under test and its
handlers are otherwise untouched; a crashed run is finished by a fresh engine
on the same store, as a worker would.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..core.engine import Engine
from ..core.errors import (
    ConfigError,
    OutcomeUnknown,
    PermanentError,
    PlanError,
    TransientError,
)
from ..core.model import OnCrash, Reversibility, Saga
from ..core.plan import Plan
from ..core.registry import HandlerKind, Registry
from ..core.states import SagaStatus
from ..core.views import SagaResult

__all__ = [
    "KINDS",
    "FailurePoint",
    "InjectedCrash",
    "InjectedFault",
    "expected_status",
    "failure_points",
    "inject",
    "run_failure_point",
]

KINDS = ("permanent", "transient", "timeout", "lost_response", "crash_before", "crash_after")
"""Every way a failure point can fail (see the module docstring)."""

CRASHES = ("crash_before", "crash_after")


class InjectedFault(PermanentError):
    """The fault ``reversa.testing`` injects at a ``permanent`` failure point."""

    default_code = "injected_fault"


class InjectedTransient(TransientError):
    """The fault injected at a ``transient`` failure point (every attempt)."""

    default_code = "injected_transient"


class InjectedTimeout(OutcomeUnknown):
    """The fault injected at ``timeout`` and ``lost_response`` failure points."""

    default_code = "injected_timeout"


class InjectedCrash(BaseException):
    """The process dies at a ``crash_*`` failure point (nothing after it runs)."""


@dataclass(frozen=True, slots=True)
class FailurePoint:
    """Where, and how, a fault is injected.

    Attributes:
        step: The step whose call fails.
        phase: ``action`` (the forward call) or ``compensation`` (its undo,
            or forward recovery for an irreversible step).
        trigger: For compensation points, the step whose action fails to start
            the rollback (the last step in plan order).
        kind: How it fails (one of :data:`KINDS`).
    """

    step: str
    phase: Literal["action", "compensation"]
    trigger: str | None = None
    kind: str = "permanent"

    def __str__(self) -> str:
        base = f"{self.phase}:{self.step}"
        return base if self.kind == "permanent" else f"{base}:{self.kind}"


def failure_points(saga: Saga, kinds: Sequence[str] = ("permanent",)) -> list[FailurePoint]:
    """Every action, and every compensation a rollback would run, of ``saga``, per kind.

    Raises:
        ValueError: An unknown kind.
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown failure kind {unknown[0]!r}; use any of {', '.join(KINDS)}")
    plan = _plan(saga)
    last = plan.order[-1]
    points = [FailurePoint(name, "action", kind=kind) for kind in kinds for name in plan.order]
    for kind in kinds:
        for name in plan.order[:-1]:
            spec = plan.step(name)
            if spec.compensation is not None or spec.forward_recovery is not None:
                points.append(FailurePoint(name, "compensation", trigger=last, kind=kind))
    return points


def expected_status(saga: Saga, point: FailurePoint) -> SagaStatus:
    """The end state Reversa guarantees for ``point`` under the saga's policies.

    An action failure ends compensated (failed, when it was rejected outright
    and nothing had happened before it), unless an irreversible step without
    forward recovery had completed, or the failed call is in doubt and the step
    cannot settle it (no block for "did not happen", neither block nor probe at
    all): then a human is needed. A crash is recovered per ``on_crash``: resumed
    to completion, or compensated. A compensation that fails ends escalated
    (AG-166 4.6, AG-384 4.2); one whose process crashed is finished by the
    recovery.
    """
    plan = _plan(saga)
    if point.phase == "compensation":
        if point.kind in CRASHES:
            return expected_status(saga, FailurePoint(point.trigger or plan.order[-1], "action"))
        return SagaStatus.ESCALATED
    spec = plan.step(point.step)
    before = plan.order[: plan.order.index(point.step)]
    if point.kind in CRASHES and saga.on_crash is OnCrash.RESUME:
        return SagaStatus.COMPLETED
    happened = point.kind in ("lost_response", "crash_after")
    in_doubt = point.kind in ("timeout", "lost_response", *CRASHES)
    if in_doubt:
        settles = spec.block is not None or (happened and spec.probe is not None)
        if not settles:
            return SagaStatus.ESCALATED
    for name in before:
        earlier = plan.step(name)
        if earlier.reversibility is Reversibility.IRREVERSIBLE and earlier.forward_recovery is None:
            return SagaStatus.ESCALATED
    if happened:
        if spec.reversibility is Reversibility.IRREVERSIBLE and spec.forward_recovery is None:
            return SagaStatus.ESCALATED
        return SagaStatus.COMPENSATED
    # "failed" says nothing was in effect when the rollback began; an in-doubt first
    # step was, until its block settled it, so that rollback ends "compensated".
    return SagaStatus.FAILED if not before and not in_doubt else SagaStatus.COMPENSATED


def inject(registry: Registry, saga: Saga, point: FailurePoint) -> Registry:
    """A copy of ``registry`` whose handler at ``point`` fails as ``point.kind`` says."""
    plan = _plan(saga)
    faulty = registry.merged()
    # Faults hit one step even when several steps share a handler.
    targets: list[tuple[HandlerKind, str, str, frozenset[str], str]] = []
    spec = plan.step(point.step)
    if point.phase == "action":
        targets.append((HandlerKind.ACTION, spec.action, spec.name, frozenset({"action"}),
                        point.kind))
    else:
        undo = frozenset({"compensation", "forward_recovery"})
        if spec.compensation is not None:
            targets.append((HandlerKind.COMPENSATION, spec.compensation, spec.name, undo,
                            point.kind))
        if spec.forward_recovery is not None:
            targets.append((HandlerKind.ACTION, spec.forward_recovery, spec.name, undo,
                            point.kind))
        trigger = plan.step(point.trigger or plan.order[-1])
        targets.append((HandlerKind.ACTION, trigger.action, trigger.name,
                        frozenset({"action"}), "permanent"))
    for handler_kind, name, step, phases, kind in targets:
        original = faulty._handlers[handler_kind][name]
        faulty._handlers[handler_kind][name] = _raiser(handler_kind, name, original, step,
                                                      phases, kind)
    return faulty


def run_failure_point(
    engine: Engine,
    saga: Saga,
    point: FailurePoint,
    input: Mapping[str, Any] | None = None,
) -> SagaResult:
    """Run ``saga`` with a fault injected at ``point``; return how it ended.

    The run happens on a sibling of ``engine`` sharing its store, clock and
    services, so every record lands where the test can inspect it. At a crash
    point the sibling dies mid-call; a fresh engine on the same store then takes
    the saga over at once (as the watchdog would) and finishes it per its policy.
    """
    sibling = Engine(inject(engine.registry, saga, point), engine.store, clock=engine.clock,
                     services=engine.services, owner=engine.owner + ":fault",
                     lease_s=engine.lease_s, heartbeat=False)
    saga_id = uuid.uuid4().hex
    try:
        return sibling.run(saga, input, saga_id=saga_id)
    except InjectedCrash:
        if point.kind not in CRASHES:  # pragma: no cover - only crash points raise it
            raise
    finally:
        sibling.close()
    return _recover(engine, saga_id)


def _recover(engine: Engine, saga_id: str) -> SagaResult:
    rescuer = Engine(engine.registry, engine.store, clock=engine.clock,
                     services=engine.services, owner=engine.owner + ":recovery",
                     lease_s=engine.lease_s, heartbeat=False)
    try:
        claimed = engine.store.claim(rescuer.owner, engine.lease_s, saga_id=saga_id,
                                     force=True)
        if not claimed:
            raise ConfigError(f"saga {saga_id} could not be taken over after the injected "
                              "crash; is another engine driving it?")
        return rescuer.take_over(saga_id, claimed[0][1],
                                 reason="the process running it crashed (injected)")
    finally:
        rescuer.close()


def _raiser(
    handler_kind: HandlerKind, name: str, original: Callable[..., Any], step: str,
    phases: frozenset[str], kind: str,
) -> Callable[..., Any]:
    where = f"{handler_kind} {name!r} (step {step!r})"

    def hit(ctx: Any) -> bool:
        # The same handler serving another step, or another phase, runs normally.
        return bool(ctx.step == step and str(ctx.phase) in phases)

    def before() -> None:
        if kind == "permanent":
            raise InjectedFault(f"injected fault in {where}")
        if kind == "transient":
            raise InjectedTransient(f"injected transient fault in {where}")
        if kind == "timeout":
            raise InjectedTimeout(f"injected timeout in {where}: nothing happened")
        if kind == "crash_before":
            raise InjectedCrash(f"injected crash before {where}")

    def after() -> BaseException:
        if kind == "lost_response":
            return InjectedTimeout(f"injected lost response in {where}: it happened")
        return InjectedCrash(f"injected crash after {where}: it happened, unrecorded")

    # Keep the handler's own flavour: a plain one stays plain (it may block, or be
    # bound to its thread), an async one stays async.
    if inspect.iscoroutinefunction(original):
        async def fail_async(ctx: Any) -> Any:
            if not hit(ctx):
                return await original(ctx)
            before()
            await original(ctx)
            raise after()

        fail_async.__wrapped__ = original  # type: ignore[attr-defined]
        return fail_async

    def fail(ctx: Any) -> Any:
        if not hit(ctx):
            return original(ctx)
        before()
        original(ctx)
        raise after()

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
