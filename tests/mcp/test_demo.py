"""``reversa mcp`` without ``--app``: the bundled demos, as a new user first meets them.

One stdio server on PostgreSQL (the other tests cover stdio on SQLite, and the
docs run this same command on SQLite), driven by the official client under the
built-in demo policy.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from reversa import Inspector
from tests.mcp.harness import Session, server_env, stdio_session
from tests.support import pg

pytest.importorskip("ccxt", reason="the payments demo needs reversa[payments-sim]")
pytest.importorskip("eth_tester", reason="the DeFi demo needs reversa[evm-sim]")
pytest.importorskip("roslibpy", reason="the robot demo needs reversa[robot-sim]")

DEMOS = ["defi-swap-c", "payments.ag166c.cross_border", "pcb-transfer"]
TKA = 10**18


@pytest.fixture(scope="module")
def demo(pg_server: pg.PgServer) -> Iterator[tuple[Session, str]]:
    db = pg_server.create_database("mcp_demo_" + uuid.uuid4().hex[:12])
    session = stdio_session(["--db", db], server_env({}))
    yield session, db
    session.close()


def test_the_demo_serves_every_bundled_workflow(demo: tuple[Session, str]) -> None:
    session, _ = demo
    listed = session.ok("list_workflows")
    assert listed["agent"] == "demo-agent"
    assert [w["name"] for w in listed["workflows"]] == DEMOS
    limits = session.ok("describe_workflow", {"workflow": "defi-swap-c"})["your_limits"]
    assert limits["max_value"] == {"GBP": 250000.0, "TKA": 20000.0}


def test_the_robot_job_runs_to_completion(demo: tuple[Session, str]) -> None:
    session, db = demo
    preview = session.ok("preview", {"workflow": "pcb-transfer", "input": {}})
    assert preview["decision"]["outcome"] == "would_start"
    started = session.ok("start_saga", {"workflow": "pcb-transfer", "input": {}})
    assert session.wait_finished(started["saga_id"])["status"] == "completed"
    with Inspector.open(db) as inspector:
        assert inspector.verify_audit(started["saga_id"]).ok
        plan = inspector.audit(started["saga_id"])[0]
    assert plan.event == "plan_recorded"
    assert "agent:demo-agent" in str(plan.detail)


def test_the_defi_route_fails_and_is_undone(demo: tuple[Session, str]) -> None:
    session, _ = demo
    preview = session.ok("preview", {"workflow": "defi-swap-c", "input": {"amount_a": 1000 * TKA}})
    assert preview["value"] == {"amount": 1000.0, "unit": "TKA"}
    assert preview["estimated_rollback_cost"]["gas"] > 0
    started = session.ok("start_saga", {"workflow": "defi-swap-c",
                                        "input": {"amount_a": 1000 * TKA}})
    status = session.wait_finished(started["saga_id"])
    assert status["status"] == "compensated"
    assert status["rollback"]["predicate_ok"] is True
    completed = [s for s in status["steps"] if s["status"] == "completed"]
    assert completed == []  # every step that ran was undone


def test_the_demo_policy_holds_and_refuses_by_value(demo: tuple[Session, str]) -> None:
    session, _ = demo
    held = session.ok("start_saga", {"workflow": "defi-swap-c",
                                     "input": {"amount_a": 16_000 * TKA}})
    assert held["status"] == "pending_approval"
    assert held["reasons"] == ["value 16,000.00 TKA is above agent demo-agent's approval "
                               "threshold of 15,000.00 TKA"]
    assert session.ok("saga_status", {"saga_id": held["saga_id"]})["status"] == (
        "awaiting_approval")
    refused = session.error("start_saga", {"workflow": "defi-swap-c",
                                           "input": {"amount_a": 20_001 * TKA}})
    assert refused.startswith("error: refused: value 20,001.00 TKA is above agent demo-agent's "
                              "limit of 20,000.00 TKA per saga")
