"""Reviewing through the console: what the pages show, and resolutions by user."""

from __future__ import annotations

import re
from typing import Any

from reversa import Inspector, Store
from tests.console import flows


def test_a_resolution_is_attributed_to_the_logged_in_user(
    api: Any, console_store: Store, escalated: tuple[str, int]
) -> None:
    saga_id, esc = escalated
    anna = api("anna")
    done = anna.form(f"/escalations/{esc}/resolve",
                     {"action": "mark_resolved", "note": "refunded by hand, ticket 42"})
    assert done.status_code == 303
    page = anna.get(done.headers["location"])
    assert "Your mark_resolved was recorded" in page.text and "resolved" in page.text
    inspector = Inspector(console_store)
    view = inspector.escalation(esc)
    assert (view.status, view.resolved_by, view.note) == (
        "resolved", "user:anna", "refunded by hand, ticket 42")
    entry = next(e for e in inspector.audit(saga_id) if e.event == "escalation_resolved")
    assert entry.detail["author"] == "user:anna"
    assert inspector.verify_audit(saga_id).ok
    # The webhooks learn of it from the outbox row written in the resolution's commit.
    events = {e.event: e.payload for e in inspector.outbox(saga_id=saga_id)}
    assert "escalation.opened" in events and "escalation.resolved" in events
    assert "user:anna" in str(events["escalation.resolved"])
    again = anna.form(f"/escalations/{esc}/resolve", {"action": "mark_resolved"})
    assert again.status_code == 404  # no open escalation any more: nothing recorded twice


def test_an_operator_retries_the_rollback_with_the_workflow_code(
    api: Any, console_store: Store, escalated: tuple[str, int]
) -> None:
    saga_id, esc = escalated
    otto = api("otto")
    # The desk is still down: the retry escalates again, and the console says so.
    failed = otto.post(f"/api/escalations/{esc}/resolve", json={"action": "retry"},
                       headers={"X-CSRF-Token": otto.csrf})
    assert failed.status_code == 200, failed.text
    assert failed.json()["outcome"] == "done"
    assert failed.json()["result"]["status"] == "escalated"
    new = failed.json()["result"]["escalation_id"]
    flows.DESK.refunds_up = True
    try:
        fixed = otto.form(f"/escalations/{new}/resolve", {"action": "retry", "note": "desk up"})
    finally:
        flows.DESK.refunds_up = False
    assert fixed.status_code == 303
    view = Inspector(console_store).saga(saga_id)
    assert view.status == "compensated"
    assert flows.DESK.book(saga_id) == {"charged": 0, "reserved": 0, "shipped": 0}
    authors = [e.detail["author"] for e in Inspector(console_store).audit(saga_id)
               if e.event == "escalation_resolved"]
    assert authors == ["user:otto", "user:otto"]


def test_the_queue_is_oldest_first_with_ages(api: Any, console_store: Store) -> None:
    first = flows.run(console_store, fail=True).escalation_id
    second = flows.run(console_store, fail=True).escalation_id
    page = api("vera").get("/escalations").text
    rows = re.findall(r'<tr data-escalation="(\d+)">', page)
    assert rows.index(str(first)) < rows.index(str(second))
    assert re.search(r'<td class="age"[^>]*>\d+s</td>', page)


def test_saga_detail_shows_graph_timeline_and_rollback_record(
    api: Any, escalated: tuple[str, int]
) -> None:
    saga_id, _ = escalated
    page = api("vera").get(f"/sagas/{saga_id[:10]}").text
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="plan-graph"' in page
    steps = dict(re.findall(r'data-step="(\w+)" data-status="(\w+)"', page))
    assert steps == {"charge": "compensation_failed", "reserve": "compensated",
                     "ship": "failed"}
    # Leaves first: reserve was undone before charge (the rollback record's order).
    order = dict(re.findall(r'data-step="(\w+)" data-status="\w+" data-comp-order="(\d*)"',
                            page))
    assert order == {"charge": "2", "reserve": "1", "ship": ""}
    assert 'data-event="plan_recorded"' in page and 'data-event="escalated"' in page
    assert "time to consistency" in page and "not consistent: escalated" in page
    # The dry-run's findings and the cost estimate of charge's refund.
    assert re.search(r'<dd class="costs">1\.5 GBP</dd>', page)
    findings = re.findall(r"<tr><td>(\w+)</td><td>compensate</td><td>(yes|NO)</td>", page)
    assert findings == [("reserve", "yes"), ("charge", "yes")]
    assert "verified</span>" in page  # the saga's chain


def test_saga_list_filters_and_pages(api: Any, console_store: Store, app: Any) -> None:
    done = [flows.run(console_store, fail=False).saga_id for _ in range(3)]
    escalated = flows.run(console_store, fail=True).saga_id
    client = api("vera")
    listed = client.get("/api/sagas", params={"status": "completed", "per_page": 2}).json()
    assert listed["total"] == 3 and len(listed["items"]) == 2
    second = client.get("/api/sagas", params={"status": "completed", "per_page": 2,
                                              "page": 2}).json()
    assert {s["id"] for s in listed["items"] + second["items"]} == set(done)
    assert [s["id"] for s in client.get("/api/sagas", params={
        "status": "escalated"}).json()["items"]] == [escalated]
    assert client.get("/api/sagas", params={"workflow": "other"}).json()["total"] == 0
    assert client.get("/api/sagas", params={"older_than": "1h"}).json()["total"] == 0
    assert client.get("/api/sagas", params={"newer_than": "1h"}).json()["total"] == 4
    bad = client.get("/api/sagas", params={"older_than": "soon"})
    assert bad.status_code == 400 and "15m" in bad.json()["error"]
    bad_status = client.get("/api/sagas", params={"status": "sleeping"})
    assert bad_status.status_code == 400 and "completed" in bad_status.json()["error"]
    page = client.get("/sagas", params={"status": "completed"}).text
    assert page.count('<tr data-saga="') == 3
    app.state.console.settings = app.state.console.settings.__class__(per_page=2)
    paged = client.get("/sagas", params={"status": "completed"}).text
    assert 'rel="next" href="/sagas?status=completed&page=2"' in paged


def test_audit_page_reports_tampering(api: Any, console_store: Store,
                                      escalated: tuple[str, int]) -> None:
    client = api("vera")
    assert 'data-ok="true"' in client.get("/audit").text
    with console_store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE reversa_audit SET outcome = 'forged' WHERE seq = 2")
    page = client.get("/audit").text
    assert 'data-ok="false"' in page and escalated[0][:12] in page
    assert client.get("/api/audit/verify").json()["ok"] is False


def test_openapi_document_lists_the_api(api: Any) -> None:
    doc = api("vera").get("/api/openapi.json").json()
    assert "/api/escalations/{escalation_id}/resolve" in doc["paths"]
    assert not [p for p in doc["paths"] if not p.startswith("/api/")]
