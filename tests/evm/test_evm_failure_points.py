"""Every failure point of scenario C, forward and in compensation (AG-384 4.8).

The pools are deep here, so each run fails only where the fault is injected.
Besides the saga status, each test asserts the chain's own end state.
"""

from __future__ import annotations

from typing import Any

import pytest

from reversa import SagaStatus, Store
from reversa.adapters.evm import register_evm
from reversa.core.registry import Registry
from reversa.demos.evm.scenarios import scenario_c
from reversa.testing import FailurePoint, expected_status, failure_points, run_failure_point

# Only the shape of the saga matters for enumerating its points.
_ADDRESSES = {k: "0x" + f"{i + 1:040x}" for i, k in
              enumerate(("TKA", "TKB", "TKC", "pool1", "pool2", "router", "vault"))}
_registry = Registry()
SAGA, _ = scenario_c(_registry, register_evm(_registry), _ADDRESSES, amount_a=1)
POINTS = failure_points(SAGA)


def test_points_cover_every_action_and_compensation() -> None:
    saga_steps = {s.name: s for s in SAGA.steps}
    # Distinct handler names per step, so a fault lands on exactly one step.
    assert len({s.compensation for s in SAGA.steps}) == len(SAGA.steps)
    assert saga_steps["swap_bc"].compensation != saga_steps["swap_ab"].compensation
    assert [str(p) for p in POINTS] == [
        "action:approve_a", "action:swap_ab", "action:swap_bc", "action:deposit_c",
        "compensation:approve_a", "compensation:swap_ab", "compensation:swap_bc",
    ]


@pytest.mark.parametrize("point", POINTS, ids=str)
def test_failure_point(point: FailurePoint, rig_factory: Any, store: Store,
                       engine_for: Any) -> None:
    rig = rig_factory(deep=True)
    start = rig.holdings()
    saga, data = rig.scenario_c()
    result = run_failure_point(engine_for(rig), saga, point, input=data)

    assert result.status is expected_status(saga, point), result.error
    end = rig.holdings()
    tolerance = data["evm"]["tolerance"]["TKA"]
    if point.phase == "action":
        assert all(v == 0 for k, v in end.items() if "->" in k), end
        assert end["TKB"] == end["TKC"] == end["shares"] == 0
        assert 0 <= start["TKA"] - end["TKA"] <= tolerance
        if point.step == "approve_a":
            assert end == start  # nothing ran
        else:
            assert result.rollback is not None and result.rollback["predicate"]["ok"] is True
    else:
        # The trigger is the last step (the deposit) failing; then the compensation
        # at ``point`` fails. Its effect (and everything before it) remains for a
        # human; everything after it was undone. The report says so.
        assert result.status is SagaStatus.ESCALATED and result.rollback is not None
        undone = [c["step"] for c in result.rollback["compensations"]
                  if c["outcome"] == "compensated"]
        order = ["approve_a", "swap_ab", "swap_bc"]
        assert undone == list(reversed(order[order.index(point.step) + 1:]))
        assert end["shares"] == 0 and end["TKC->vault"] == 0
        remains = {"approve_a": end["TKA->router"] > 0,
                   "swap_ab": end["TKB"] > 0,
                   "swap_bc": end["TKC"] > 0}
        assert remains[point.step], end
        post = result.rollback["post_state"]
        assert post["balances"]["TKB"] == end["TKB"] and post["balances"]["TKC"] == end["TKC"]
        assert post["allowances"]["TKA"][rig.world.address("router")] == end["TKA->router"]
    assert store.verify_audit().ok
