"""``reversa mcp`` through the official MCP client, over stdio and streamable HTTP.

One server per transport and backend (see conftest); every test talks to it as an
agent does and checks what the bank and the store then hold.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from reversa import Inspector
from reversa.demos.payments import PaymentsWorld
from reversa.mcp.server import TOOLS
from tests.core.clirun import cli
from tests.mcp.app import API_KEY, API_SECRET, SANCTIONED, VAULT_TOKEN
from tests.mcp.conftest import BOT_TOKEN, READER_TOKEN, Served

CROSS = "payments.ag166c.cross_border"
EXPECTED_TOOLS = ["list_workflows", "describe_workflow", "preview", "start_saga", "saga_status",
                  "saga_timeline", "request_rollback", "list_escalations"]


def payment(amount: str, beneficiary: str = "Fjord Supplies AS") -> dict[str, Any]:
    return {"sender": "cust:bob", "amount": amount, "beneficiary": beneficiary,
            "reference": "INV-" + uuid.uuid4().hex[:6]}


def effects(bank: PaymentsWorld) -> dict[str, Any]:
    """Everything in the bank that an effect would change (reads are not effects)."""
    stats = bank.ledger.stats()
    writes = {k: v for k, v in stats["calls"].items()
              if k in {"create_transfer", "create_linked", "submit_payment", "create_account",
                       "post_pending", "void_pending"}}
    return {"landed": dict(stats["landed"]), "writes": writes,
            "orders": len(bank.venue.orders), "balances": bank.balances()}


def saga_count(db: str) -> int:
    with Inspector.open(db) as inspector:
        return inspector.count()


# -- the tool list ------------------------------------------------------------------------
def test_tools_are_listed_with_their_pydantic_schemas(served: Served) -> None:
    listed = served.session.run(served.session.client.list_tools()).tools  # type: ignore[union-attr]
    assert [t.name for t in listed] == EXPECTED_TOOLS
    models = {t.name: t.model for t in TOOLS}
    for tool in listed:
        assert tool.input_schema == models[tool.name].model_json_schema()
        assert tool.input_schema["additionalProperties"] is False, tool.name
        assert tool.description
    read_only = {t.name for t in listed if t.annotations and t.annotations.read_only_hint}
    assert read_only == {"list_workflows", "describe_workflow", "preview", "saga_status",
                         "saga_timeline", "list_escalations"}


def test_no_tool_resolves_approves_edits_or_reads_secrets(served: Served) -> None:
    listed = served.session.run(served.session.client.list_tools()).tools  # type: ignore[union-attr]
    forbidden = ("resolve", "approve", "reject", "edit", "plan", "policy", "limit", "secret",
                 "service", "token", "credential", "sql", "delete")
    for tool in listed:
        assert not any(word in tool.name for word in forbidden), tool.name
    error = served.session.error("resolve_escalation", {"escalation_id": 1})
    assert error.startswith("error: unknown tool 'resolve_escalation'")


def test_malformed_arguments_get_one_clear_line(served: Served) -> None:
    before = saga_count(served.db)
    s = served.session
    assert s.error("start_saga", {}) == (
        "error: malformed arguments for start_saga: workflow: Field required; its input "
        "schema (tools/list) says what it takes")
    assert "workflow: Input should be a valid string" in s.error("start_saga", {"workflow": 5})
    text = s.error("saga_status", {"saga_id": "not-hex!", "verbose": True})
    assert "saga_id: String should match pattern" in text
    assert "verbose: not an accepted argument" in text
    text = s.error("start_saga", {"workflow": CROSS, "input": {"sender": "bob", "amount": -5}})
    assert text.startswith(f"error: input for {CROSS}: ")
    for part in ("sender: String should match pattern", "amount: Input should be greater than 0",
                 "beneficiary: Field required", "reference: Field required",
                 f"see describe_workflow '{CROSS}'"):
        assert part in text
    assert saga_count(served.db) == before


# -- workflows and preview ----------------------------------------------------------------
def test_workflows_show_rollback_semantics_and_limits(served: Served) -> None:
    listed = served.session.ok("list_workflows")
    assert listed["agent"] == "payments-bot"
    assert [w["name"] for w in listed["workflows"]] == [CROSS, "test.costly", "test.gated",
                                                        "test.vault"]  # not test.forbidden
    steps = {s["name"]: s for s in listed["workflows"][0]["steps"]}
    assert steps["convert"]["reversibility"] == "reversible"
    assert steps["convert"]["compensation_kind"] == "reverse"
    assert steps["convert"]["cost_estimator"] == "payments.fx_convert:cost"
    assert steps["credit_partner"]["reversibility"] == "irreversible"
    assert steps["credit_partner"]["compensation"] is None
    assert "TARGET2" in steps["credit_partner"]["escalation"]
    described = served.session.ok("describe_workflow", {"workflow": CROSS})
    assert described["input_schema"]["required"] == ["sender", "amount", "beneficiary",
                                                     "reference"]
    assert described["your_limits"]["max_value"] == {"GBP": 250000.0}
    assert described["policy"]["max_rollback_cost"] == {"GBP": 2000.0}


def test_preview_has_no_effect(served: Served) -> None:
    before, sagas = effects(served.bank), saga_count(served.db)
    preview = served.session.ok("preview", {"workflow": CROSS, "input": payment("100000.00")})
    assert preview["decision"] == {"outcome": "would_start", "reasons": []}
    assert preview["value"] == {"amount": 100000.0, "unit": "GBP"}
    assert 50 < preview["estimated_rollback_cost"]["GBP"] < 500  # spread, depth and fees
    actions = {f["step"]: f["action"] for f in preview["rollback"]["steps"]}
    assert actions == {"credit_partner": "escalate", "convert": "compensate",
                       "debit": "compensate"}
    assert preview["rollback"]["feasible"] is True
    over = served.session.ok("preview", {"workflow": CROSS, "input": payment("200000.00")})
    assert over["decision"]["outcome"] == "needs_approval"
    refused = served.session.ok("preview", {"workflow": CROSS, "input": payment("300000.00")})
    assert refused["decision"]["outcome"] == "refused"
    assert effects(served.bank) == before
    assert saga_count(served.db) == sagas


# -- governance ---------------------------------------------------------------------------
def test_unauthorised_workflow_and_over_limit_amount_are_refused(served: Served) -> None:
    before, sagas = effects(served.bank), saga_count(served.db)
    s = served.session
    assert s.error("start_saga", {"workflow": "test.forbidden", "input": payment("10.00")}) == (
        "error: refused: agent 'payments-bot' may not use workflow 'test.forbidden' (not in its "
        "policy's workflows); list_workflows names those it may")
    assert s.error("describe_workflow", {"workflow": "test.forbidden"}).startswith(
        "error: refused: ")
    text = s.error("start_saga", {"workflow": CROSS, "input": payment("300000.00")})
    assert text.startswith("error: refused: value 300,000.00 GBP is above agent payments-bot's "
                           "limit of 250,000.00 GBP per saga")
    assert effects(served.bank) == before
    assert saga_count(served.db) == sagas


def test_a_failing_saga_rolls_back_through_the_tools(served: Served) -> None:
    bob = served.bank.balances()["cust:bob"]
    started = served.session.ok("start_saga", {"workflow": CROSS,
                                               "input": payment("100000.00", SANCTIONED)})
    assert started["status"] == "started"
    status = served.session.wait_finished(started["saga_id"])
    assert status["status"] == "compensated"
    assert status["failed_step"] == "credit_partner"
    assert "sanctions" in status["error"]
    assert {s["name"]: s["status"] for s in status["steps"]} == {
        "debit": "compensated", "convert": "compensated", "credit_partner": "failed"}
    assert status["rollback"]["predicate_ok"] is True
    assert 50 < status["rollback"]["estimated_cost"]["GBP"] < 500
    assert served.bank.balances()["cust:bob"] == bob  # the FX cost is the bank's, not bob's
    timeline = served.session.ok("saga_timeline", {"saga_id": started["saga_id"]})
    assert timeline["verified"] is True
    events = [e["event"] for e in timeline["entries"]]
    assert events[0] == "plan_recorded"
    assert "compensation_completed" in events


def test_the_agent_identity_is_in_the_audit_chain(served: Served) -> None:
    started = served.session.ok("start_saga", {"workflow": CROSS,
                                               "input": payment("1000.00", SANCTIONED)})
    served.session.wait_finished(started["saga_id"])
    with Inspector.open(served.db) as inspector:
        entries = inspector.audit(started["saga_id"])
        assert inspector.verify_audit(started["saga_id"]).ok
    plan = entries[0]
    assert plan.event == "plan_recorded"
    assert plan.seq == 1
    assert "agent:payments-bot" in json.dumps(plan.detail)


def test_over_the_threshold_a_human_approves_before_it_runs(served: Served) -> None:
    before = effects(served.bank)
    started = served.session.ok("start_saga", {"workflow": CROSS, "input": payment("200000.00")})
    assert started["status"] == "pending_approval"
    assert "above agent payments-bot's approval threshold" in started["reasons"][0]
    saga_id, approval = started["saga_id"], started["approval_id"]
    status = served.session.ok("saga_status", {"saga_id": saga_id})
    assert status["status"] == "awaiting_approval"
    assert effects(served.bank) == before  # recorded, not run
    approved = cli("approvals", "approve", str(approval), "--by", "alice", "--db", served.db)
    assert approved.returncode == 0, approved.stderr
    status = served.session.wait_finished(saga_id)
    assert status["status"] == "completed"
    timeline = json.dumps(served.session.ok("saga_timeline", {"saga_id": saga_id}))
    assert "agent:payments-bot" in timeline
    assert "alice" in timeline


def test_a_rollback_request_of_a_completed_payment_reaches_a_human(served: Served) -> None:
    started = served.session.ok("start_saga", {"workflow": CROSS, "input": payment("5000.00")})
    assert served.session.wait_finished(started["saga_id"])["status"] == "completed"
    requested = served.session.ok("request_rollback", {
        "saga_id": started["saga_id"], "reason": "customer disputes the payment"})
    assert requested["status"] == "requested"
    status = served.session.wait_finished(started["saga_id"])
    # The TARGET2 credit is final: the rest is undone and a human gets the report.
    assert status["status"] == "escalated"
    listed = served.session.ok("list_escalations")["escalations"]
    mine = [e for e in listed if e["saga_id"] == started["saga_id"]]
    assert len(mine) == 1
    assert mine[0]["workflow"] == CROSS
    assert mine[0]["status"] == "open"
    timeline = json.dumps(served.session.ok("saga_timeline", {"saga_id": started["saga_id"]}))
    assert "customer disputes the payment" in timeline
    assert "agent:payments-bot" in timeline
    client = served.session.client
    assert client is not None
    read = served.session.run(client.read_resource(mine[0]["resource"]))
    report = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    assert report["id"] == mine[0]["id"]
    assert report["saga_id"] == started["saga_id"]
    assert "TARGET2" in json.dumps(report)
    # While escalated the saga holds the accounts it used (issue 15): a human closes it,
    # which releases them for the payments the next tests make.
    resolved = cli("escalations", "resolve", str(mine[0]["id"]), "--action", "mark_resolved",
                   "--author", "alice", "--note", "refunded by hand", "--db", served.db)
    assert resolved.returncode == 0, resolved.stderr


def test_four_eyes_holds_a_rollback_an_agent_requests(served: Served) -> None:
    started = served.session.ok("start_saga", {"workflow": CROSS, "input": payment("60000.00")})
    assert served.session.wait_finished(started["saga_id"])["status"] == "completed"
    before = effects(served.bank)
    requested = served.session.ok("request_rollback", {
        "saga_id": started["saga_id"], "reason": "paid twice, says the customer"})
    assert requested["status"] == "pending_approval"
    assert requested["reasons"] == ["four-eyes: value 60000 * is at or above 50000 *"]
    # Nothing is undone while a second person decides; the request is on record.
    assert served.session.ok("saga_status", {"saga_id": started["saga_id"]})["status"] == (
        "completed")
    assert effects(served.bank) == before
    with Inspector.open(served.db) as inspector:
        approval = inspector.approval(requested["approval_id"])
    assert (approval.kind, approval.status) == ("rollback", "pending")
    assert approval.requested_by == "agent:payments-bot"
    assert approval.payload["reason"] == "paid twice, says the customer"
    rejected = cli("approvals", "reject", str(approval.id), "--by", "alice",
                   "--note", "not a duplicate", "--db", served.db)
    assert rejected.returncode == 0, rejected.stderr
    assert served.session.ok("saga_status", {"saga_id": started["saga_id"]})["status"] == (
        "completed")
    assert effects(served.bank) == before


def test_a_running_saga_rolls_back_at_its_next_step_boundary(served: Served) -> None:
    started = served.session.ok("start_saga", {"workflow": "test.gated", "input": {}})
    saga_id = started["saga_id"]
    deadline = time.monotonic() + 60
    while True:  # until the first step is done and the second one is held
        steps = {s["name"]: s["status"] for s in served.session.ok(
            "saga_status", {"saga_id": saga_id})["steps"]}
        if steps.get("first") == "completed" and steps.get("wait") == "running":
            break
        assert time.monotonic() < deadline, steps
        time.sleep(0.05)
    requested = served.session.ok("request_rollback", {"saga_id": saga_id,
                                                       "reason": "the order was cancelled"})
    assert requested["status"] == "requested"
    assert requested["saga_status"] == "running"  # its owner rolls it back, not this call
    served.open_gate(saga_id)
    status = served.session.wait_finished(saga_id)
    assert status["status"] == "compensated"
    assert {s["name"]: s["status"] for s in status["steps"]} == {
        "first": "compensated", "wait": "compensated", "last": "pending"}
    timeline = json.dumps(served.session.ok("saga_timeline", {"saga_id": saga_id}))
    assert "the order was cancelled" in timeline
    assert "agent:payments-bot" in timeline


def test_a_dear_rollback_waits_for_a_human_who_may_reject_it(served: Served) -> None:
    held = served.session.ok("start_saga", {"workflow": "test.costly", "input": {}})
    assert held["status"] == "pending_approval"
    assert held["reasons"] == ["estimated rollback cost 5,000.00 GBP is above agent "
                               "payments-bot's limit of 2,000.00 GBP"]
    rejected = cli("approvals", "reject", str(held["approval_id"]), "--by", "alice",
                   "--note", "too dear to unwind", "--db", served.db)
    assert rejected.returncode == 0, rejected.stderr
    status = served.session.ok("saga_status", {"saga_id": held["saga_id"]})
    assert status["status"] == "rejected"
    assert status["finished"] is True
    assert [s["status"] for s in status["steps"]] == ["pending"]  # nothing ran
    with Inspector.open(served.db) as inspector:
        approval = inspector.approval(held["approval_id"])
    assert approval.status == "rejected"
    assert approval.requested_by == "agent:payments-bot"
    assert [d.by for d in approval.decisions] == ["alice"]


def test_sagas_and_escalations_are_resources(served: Served) -> None:
    client = served.session.client
    assert client is not None
    templates = served.session.run(client.list_resource_templates()).resource_templates
    assert {t.uri_template for t in templates} == {"reversa://sagas/{id}",
                                                   "reversa://escalations/{id}"}
    started = served.session.ok("start_saga", {"workflow": CROSS,
                                               "input": payment("1200.00", SANCTIONED)})
    served.session.wait_finished(started["saga_id"])
    read = served.session.run(client.read_resource(f"reversa://sagas/{started['saga_id']}"))
    saga = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    assert saga["id"] == started["saga_id"]
    assert saga["status"] == "compensated"
    listed = served.session.run(client.list_resources()).resources
    assert f"reversa://sagas/{started['saga_id']}" in {str(r.uri) for r in listed}
    with pytest.raises(Exception, match="unknown resource"):
        served.session.run(client.read_resource("reversa://plans/1"))


def test_secrets_in_services_never_reach_an_agent(served: Served) -> None:
    outputs: list[str] = []

    def keep(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = served.session.call(tool, arguments)
        outputs.extend(c.text for c in result.content)  # type: ignore[union-attr]
        return result.structured_content or {}

    vault = keep("preview", {"workflow": "test.vault", "input": {}})
    # The precondition quoted the vault's token: the agent sees it masked.
    reason = vault["rollback"]["steps"][0]["preconditions"][0]["reason"]
    assert reason == "vault refused token ***"
    started = keep("start_saga", {"workflow": CROSS, "input": payment("2000.00", SANCTIONED)})
    served.session.wait_finished(started["saga_id"])
    for tool, arguments in [("list_workflows", {}), ("describe_workflow", {"workflow": CROSS}),
                            ("preview", {"workflow": CROSS, "input": payment("10.00")}),
                            ("saga_status", {"saga_id": started["saga_id"]}),
                            ("saga_timeline", {"saga_id": started["saga_id"]}),
                            ("list_escalations", {"status": "all"})]:
        keep(tool, arguments)
    client = served.session.client
    assert client is not None
    read = served.session.run(client.read_resource(f"reversa://sagas/{started['saga_id']}"))
    outputs.extend(c.text for c in read.contents)  # type: ignore[union-attr]
    everything = "\n".join(outputs)
    assert len(everything) > 10_000  # the outputs are there: the check below means something
    for secret in (API_KEY, API_SECRET, VAULT_TOKEN, BOT_TOKEN, READER_TOKEN):
        assert secret not in everything


def test_a_held_start_stores_no_secret_in_its_reason(served: Served) -> None:
    # The vault's rollback dry-run fails (its precondition quotes the token), so the
    # start waits for a human; the reason recorded for that human is masked too.
    held = served.session.ok("start_saga", {"workflow": "test.vault", "input": {}})
    assert held["status"] == "pending_approval"
    assert held["reasons"] == ["its rollback dry-run finds problems: precondition "
                               "'vault.read:preconditions' of step 'read' does not hold: vault "
                               "refused token ***"]
    with Inspector.open(served.db) as inspector:
        stored = inspector.approval(held["approval_id"])
        chain = json.dumps([e.detail for e in inspector.audit(held["saga_id"])])
    assert stored.reason == held["reasons"][0]
    assert VAULT_TOKEN not in chain and "refused token ***" in chain


def test_a_request_id_makes_starts_safe_to_retry(served: Served) -> None:
    key = "retry-" + uuid.uuid4().hex
    arguments = {"workflow": CROSS, "input": payment("700.00", SANCTIONED), "request_id": key}
    first = served.session.ok("start_saga", arguments)
    again = served.session.ok("start_saga", arguments)
    assert first["status"] == "started"
    assert again["status"] == "already_started"
    assert again["saga_id"] == first["saga_id"]
    assert served.session.error("start_saga", {
        "workflow": "test.vault", "input": {}, "request_id": key}).startswith(
        f"error: request_id already started a {CROSS} saga")


# -- identities over HTTP -----------------------------------------------------------------
def test_http_identities_come_from_bearer_tokens(served: Served) -> None:
    if served.http is None:
        pytest.skip("stdio connections speak for the agent the operator named")
    reader = served.as_reader()
    try:
        assert reader.ok("list_workflows")["agent"] == "reader"
        assert reader.error("preview", {"workflow": "test.vault", "input": {}}).startswith(
            "error: refused: agent 'reader' may not use workflow 'test.vault'")
        started = served.session.ok("start_saga", {"workflow": CROSS,
                                                   "input": payment("1500.00", SANCTIONED)})
        assert reader.error("request_rollback", {
            "saga_id": started["saga_id"], "reason": "testing"}).startswith(
            "error: refused: agent 'reader' may not request rollbacks")
        # A saga of a workflow the reader may not use does not exist, for the reader.
        vault = served.session.ok("start_saga", {"workflow": "test.vault", "input": {}})
        assert reader.error("saga_status", {"saga_id": vault["saga_id"]}) == (
            f"error: no saga '{vault['saga_id']}'; start_saga returns the ids of the sagas you "
            "start")
        assert vault["saga_id"] not in json.dumps(reader.ok("list_escalations",
                                                             {"status": "all"}))
    finally:
        reader.close()
    with pytest.raises(Exception):  # noqa: B017 - the client reports 401 its own way
        served.http.session("not-a-token")


def test_http_requests_without_a_known_token_get_401(served: Served) -> None:
    if served.http is None:
        pytest.skip("stdio has no bearer tokens")
    import httpx

    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    for extra in ({}, {"Authorization": "Bearer not-a-token"},
                  {"Authorization": f"Basic {BOT_TOKEN}"}):
        answer = httpx.post(served.http.url, json=ping, headers={**headers, **extra}, timeout=30)
        assert answer.status_code == 401, (extra, answer.text)
        assert "list_workflows" not in answer.text
