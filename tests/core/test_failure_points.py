"""AG-384 4.8 on the onboarding workflow: every failure point, forward and in compensation.

Written with Reversa's own pytest plugin, the way a user tests a workflow: the plugin
provides ``reversa_store`` (SQLite and PostgreSQL), ``reversa_engine`` and one test per
failure point and kind (permanent, transient until retries run out, timed out, answer
lost, crash before and after the call).
"""

from __future__ import annotations

from typing import Any

import pytest

from reversa import Registry, SagaStatus, Store
from reversa.demos import onboarding
from reversa.testing import (
    KINDS,
    FailurePoint,
    expected_status,
    failure_points,
    run_failure_point,
)

SAGA = onboarding.saga(backoff_s=0.0)
INPUT = {"client_id": "C1", "name": "Acme"}


@pytest.fixture
def world() -> onboarding.OnboardingWorld:
    return onboarding.OnboardingWorld(vendor_up=True)


@pytest.fixture
def reversa_registry() -> Registry:
    return onboarding.registry()


@pytest.fixture
def reversa_services(world: onboarding.OnboardingWorld) -> dict[str, Any]:
    return {"onboarding": world}


def test_points_cover_every_action_and_compensation() -> None:
    assert [str(p) for p in failure_points(SAGA)] == [
        "action:create_client", "action:open_account", "action:configure_screening",
        "action:send_welcome", "action:activate_market_data",
        "compensation:create_client", "compensation:open_account",
        "compensation:configure_screening", "compensation:send_welcome"]
    every = failure_points(SAGA, kinds=KINDS)
    assert len(every) == 9 * len(KINDS)
    assert "compensation:open_account:crash_after" in {str(p) for p in every}


@pytest.mark.failure_points(SAGA)
def test_every_failure_point(reversa_engine: Any, reversa_store: Store,
                             failure_point: FailurePoint,
                             world: onboarding.OnboardingWorld) -> None:
    before = world.state()
    result = run_failure_point(reversa_engine, SAGA, failure_point, INPUT)
    assert result.status is expected_status(SAGA, failure_point)
    # Counted at the services: no effect was applied twice under one key.
    assert set(world.effects.values()) <= {1}
    if result.status in (SagaStatus.COMPENSATED, SagaStatus.FAILED):
        assert world.state() == before  # the domain itself is back where it was
        assert result.rollback is not None and result.rollback["predicate"]["ok"]
    elif result.status is SagaStatus.COMPLETED:
        assert world.state()["clients"] == ["C1"]  # recovered forward, exactly once
    else:
        (esc,) = reversa_engine.inspect(result.saga_id).escalations
        steps = {s["step"]: s for s in esc.report["steps"]}
        stuck = [s for s in steps.values()
                 if s["status"] in ("compensation_failed", "escalated")]
        assert stuck and all(s["effect_remains"] for s in stuck)
    assert reversa_store.verify_audit().ok


def test_expected_status_follows_the_settling_rules() -> None:
    def point(step: str, kind: str) -> FailurePoint:
        return FailurePoint(step, "action", kind=kind)

    # create_client has a probe but no block: a lost answer is settled (it happened,
    # so it is undone), a timeout is not (only a block can make "not happened" true).
    assert expected_status(SAGA, point("create_client", "lost_response")) is \
        SagaStatus.COMPENSATED
    assert expected_status(SAGA, point("create_client", "timeout")) is SagaStatus.ESCALATED
    assert expected_status(SAGA, point("create_client", "permanent")) is SagaStatus.FAILED
    assert expected_status(SAGA, FailurePoint("open_account", "compensation",
                                              "activate_market_data",
                                              "crash_after")) is SagaStatus.COMPENSATED
    with pytest.raises(ValueError, match="unknown failure kind 'boom'"):
        failure_points(SAGA, kinds=["boom"])
