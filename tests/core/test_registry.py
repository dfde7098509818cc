"""Registry decorators, operations and bad input."""

from __future__ import annotations

from typing import Any

import pytest

from reversa import Check, CostEstimate, PlanError, Probe, Registry, StepContext


def test_decorators_work_bare_and_called() -> None:
    reg = Registry()

    @reg.action
    def bare(ctx: StepContext) -> None: ...

    @reg.action("named")
    def called(ctx: StepContext) -> None: ...

    assert reg.has("action", f"{__name__}.test_decorators_work_bare_and_called.<locals>.bare")
    assert reg.get("action", "named") is called


def test_bad_registration_is_rejected_at_once() -> None:
    reg = Registry()
    with pytest.raises(PlanError, match="is not callable"):
        reg.add("action", "x", 42)  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="takes a name string or nothing"):
        reg.action(3)  # type: ignore[call-overload]
    reg.add("action", "dup", lambda ctx: 1)
    with pytest.raises(PlanError, match="'dup' is already registered"):
        reg.add("action", "dup", lambda ctx: 2)


class Hold:
    """A domain operation with every optional part."""

    name = "ledger.hold"

    def execute(self, ctx: Any) -> dict[str, str]:
        return {"hold": ctx.idempotency_key}

    def compensate(self, ctx: Any) -> dict[str, str]:
        return {"void": ctx.result["hold"]}

    def probe(self, ctx: Any) -> Probe:
        return Probe.UNKNOWN

    def preconditions(self, ctx: Any) -> Check:
        return Check(True)

    def estimate_cost(self, ctx: Any) -> CostEstimate:
        return CostEstimate(0.0, "GBP")


def test_operation_registers_every_part_and_wires_steps() -> None:
    reg = Registry()
    reg.register(Hold())
    step = reg.step("hold", operation="ledger.hold", depends_on=("x",))
    assert step.action == "ledger.hold" and step.compensation == "ledger.hold:compensate"
    assert step.probe == "ledger.hold:probe" and step.cost == "ledger.hold:cost"
    assert step.preconditions == ("ledger.hold:preconditions",) and step.depends_on == ("x",)
    with pytest.raises(PlanError, match="operation 'nope' is not registered"):
        reg.step("y", operation="nope")


def test_irreversible_operation_needs_no_compensate() -> None:
    class Paste:
        name = "paste"

        def execute(self, ctx: Any) -> None: ...

    reg = Registry()
    reg.register(Paste())  # type: ignore[arg-type]
    step = reg.step("paste", operation="paste", reversibility="irreversible",
                    forward_recovery="paste")
    assert step.compensation is None
    with pytest.raises(PlanError, match="has no execute\\(\\) method"):
        reg.register(object(), name="nothing")  # type: ignore[arg-type]
