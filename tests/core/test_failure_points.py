"""AG-384 4.8 on the onboarding workflow: every failure point, forward and in compensation."""

from __future__ import annotations

import pytest

from reversa import Engine, FakeClock, SagaStatus, Store
from reversa.demos import onboarding
from reversa.testing import expected_status, failure_points, run_failure_point

SAGA = onboarding.saga(backoff_s=0.0)
POINTS = failure_points(SAGA)


def test_points_cover_every_action_and_compensation() -> None:
    assert [str(p) for p in POINTS] == [
        "action:create_client", "action:open_account", "action:configure_screening",
        "action:send_welcome", "action:activate_market_data",
        "compensation:create_client", "compensation:open_account",
        "compensation:configure_screening", "compensation:send_welcome"]


@pytest.mark.parametrize("point", POINTS, ids=str)
def test_every_failure_point(store: Store, point: object) -> None:
    world = onboarding.OnboardingWorld(vendor_up=True)
    before = world.state()
    engine = Engine(onboarding.registry(), store, clock=FakeClock(),
                    services={"onboarding": world}, heartbeat=False)
    result = run_failure_point(engine, SAGA, point, {"client_id": "C1", "name": "Acme"})
    engine.close()
    assert result.status is expected_status(SAGA, point)
    if result.status in (SagaStatus.COMPENSATED, SagaStatus.FAILED):
        assert world.state() == before  # the domain itself is back where it was
        assert result.rollback is not None and result.rollback["predicate"]["ok"]
    else:
        (esc,) = engine.inspect(result.saga_id).escalations
        failed = {s["step"]: s for s in esc.report["steps"]}[point.step]  # type: ignore[attr-defined]
        assert failed["status"] == "compensation_failed" and failed["effect_remains"]
    assert store.verify_audit().ok
