"""Four-eyes and operator rollbacks through the console, attributed to its users."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from reversa import FakeClock, FourEyes, Inspector, Store
from reversa.console import Code, create_app
from tests.console import flows
from tests.console.conftest import CHEAP, CODE, Api, Clock

BIG = 5000  # at or above the four-eyes threshold below


@pytest.fixture
def governed(console_store: Store, wall: Clock) -> Iterator[Any]:
    """A console whose policy needs a second approver for refund-desk sagas >= 1000."""
    app = create_app(console_store, code=Code([CODE[0]], CODE[1]), clock=wall, hasher=CHEAP,
                     engine_options={"governance": {
                         "refund-desk": FourEyes(min_value={"*": 1000})}})
    made: list[Api] = []

    def client(user: str) -> Api:
        made.append(Api(app))
        assert made[-1].login(user).status_code == 303
        return made[-1]

    yield client
    for c in made:
        c.close()


def _json(client: Api, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, json=body, headers={"X-CSRF-Token": client.csrf})


def test_a_big_resolution_waits_for_a_second_distinct_approver(
    governed: Any, console_store: Store
) -> None:
    escalated = flows.run(console_store, fail=True, amount=BIG)
    esc = escalated.escalation_id
    anna, abe, otto = governed("anna"), governed("abe"), governed("otto")
    asked = anna.form(f"/escalations/{esc}/resolve",
                      {"action": "mark_resolved", "note": "refunded by hand"})
    assert asked.status_code == 303
    assert asked.headers["location"].endswith("?requested=resolution")
    approval_id = int(asked.headers["location"].split("/")[2].split("?")[0])
    page = anna.get(asked.headers["location"]).text
    assert 'id="four-eyes"' in page and 'id="not-yours"' in page  # anna may not approve
    inspector = Inspector(console_store)
    assert inspector.escalation(esc).status == "open"  # nothing took effect yet
    own = anna.form(f"/approvals/{approval_id}/approve", {})
    assert own.status_code == 400 and "four-eyes" in own.text
    assert otto.form(f"/approvals/{approval_id}/approve", {}).status_code == 403
    assert 'id="approve-form"' in abe.get(f"/approvals/{approval_id}").text
    assert abe.form(f"/approvals/{approval_id}/approve", {"note": "checked the ledger"}
                    ).status_code == 303
    view = inspector.escalation(esc)
    assert (view.status, view.resolved_by) == ("resolved", "user:anna")
    decided = inspector.approval(approval_id)
    assert decided.status == "executed" and decided.approvers == ["user:abe"]
    events = {e.event: e.detail for e in inspector.audit(escalated.saga_id)}
    assert "approval_requested" in events and "escalation_resolved" in events
    chain = " ".join(str(e.detail) for e in inspector.audit(escalated.saga_id))
    assert "user:anna" in chain and "user:abe" in chain
    assert inspector.verify_audit(escalated.saga_id).ok


def test_a_small_resolution_takes_effect_at_once(governed: Any, console_store: Store) -> None:
    esc = flows.run(console_store, fail=True, amount=120).escalation_id
    done = _json(governed("anna"), f"/api/escalations/{esc}/resolve",
                 {"action": "mark_resolved"})
    assert done.json()["outcome"] == "done" and done.json()["result"]["status"] == "resolved"


def test_a_rejection_needs_a_note_and_leaves_the_escalation_open(
    governed: Any, console_store: Store
) -> None:
    esc = flows.run(console_store, fail=True, amount=BIG).escalation_id
    pending = _json(governed("anna"), f"/api/escalations/{esc}/resolve",
                    {"action": "mark_resolved"}).json()
    assert pending["outcome"] == "pending_approval"
    approval_id = pending["approval"]["id"]
    abe = governed("abe")
    bare = _json(abe, f"/api/approvals/{approval_id}/reject", {"note": ""})
    assert bare.status_code == 400 and "note" in bare.json()["error"]
    rejected = _json(abe, f"/api/approvals/{approval_id}/reject", {"note": "not refunded yet"})
    assert rejected.json()["status"] == "rejected"
    assert Inspector(console_store).escalation(esc).status == "open"
    listed = abe.get("/api/approvals", params={"status": "rejected"}).json()
    assert [a["id"] for a in listed] == [approval_id]


def test_an_operator_rolls_back_a_completed_saga(api: Any, console_store: Store) -> None:
    done = flows.run(console_store, fail=False)
    otto = api("otto")
    page = otto.get(f"/sagas/{done.saga_id}").text
    assert 'id="rollback-form"' in page
    assert 'id="rollback-form"' not in api("vera").get(f"/sagas/{done.saga_id}").text
    asked = otto.form(f"/sagas/{done.saga_id}/rollback", {"reason": "customer cancelled"})
    assert asked.status_code == 303, asked.text
    inspector = Inspector(console_store)
    assert inspector.saga(done.saga_id).status == "compensated"
    assert flows.DESK.book(done.saga_id) == {"charged": 0, "reserved": 0, "shipped": 0}
    chain = " ".join(str(e.detail) for e in inspector.audit(done.saga_id))
    assert "user:otto" in chain and "customer cancelled" in chain
    record = otto.get(f"/sagas/{done.saga_id}").text  # the rollback record it shows
    assert re.search(r'<dd class="predicate"><span class="ok">holds</span>', record)
    assert re.search(r'<dd class="ttc">\d+\.\d{3} s</dd>', record)
    again = otto.form(f"/sagas/{done.saga_id}/rollback", {"reason": "twice"})
    assert again.status_code == 400 and "nothing to roll back" in again.text


def test_an_operator_stops_a_running_saga(api: Any, console_store: Store) -> None:
    flows.DESK.held.clear()
    flows.DESK.gate.clear()
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(flows.run, console_store, fail=False, hold=True)
        try:
            assert flows.DESK.held.wait(timeout=120)  # inside step 2, lease held
            saga_id = Inspector(console_store).sagas(status=["running"])[0].id
            otto = api("otto")
            assert 'id="rollback-form"' in otto.get(f"/sagas/{saga_id}").text
            asked = _json(otto, f"/api/sagas/{saga_id}/rollback", {"reason": "wrong client"})
            assert asked.json()["outcome"] == "done", asked.text
            assert asked.json()["result"]["status"] == "running"  # its owner will roll back
            page = otto.get(f"/sagas/{saga_id}").text
            assert 'id="rollback-requested"' in page and "user:otto" in page
        finally:
            flows.DESK.gate.set()
        result = running.result(timeout=120)
    assert result.status == "compensated"  # stopped at the step boundary, rolled back
    assert Inspector(console_store).saga(saga_id).step("ship").status == "pending"
    assert flows.DESK.book(saga_id) == {"charged": 0, "reserved": 0, "shipped": 0}


def test_a_big_rollback_waits_for_an_approver(governed: Any, console_store: Store) -> None:
    done = flows.run(console_store, fail=False, amount=BIG)
    asked = _json(governed("otto"), f"/api/sagas/{done.saga_id}/rollback",
                  {"reason": "duplicate order"}).json()
    assert asked["outcome"] == "pending_approval", asked
    assert Inspector(console_store).saga(done.saga_id).status != "compensated"
    approved = _json(governed("anna"), f"/api/approvals/{asked['approval']['id']}/approve",
                     {"note": ""})
    assert approved.status_code == 200, approved.text
    assert Inspector(console_store).saga(done.saga_id).status == "compensated"


def test_a_rollback_past_its_window_is_refused(console_store: Store, wall: Clock) -> None:
    done = flows.run(console_store, fail=False)
    later = FakeClock(time.time() + 7200)  # two hours on: past the one-hour window
    app = create_app(console_store, code=Code([CODE[0]], CODE[1]), clock=wall, hasher=CHEAP,
                     engine_options={"clock": later})
    otto = Api(app)
    try:
        otto.login("otto")
        refused = _json(otto, f"/api/sagas/{done.saga_id}/rollback", {"reason": "too late"})
    finally:
        otto.close()
    assert refused.status_code == 400 and "rollback window" in refused.json()["error"]
    assert Inspector(console_store).saga(done.saga_id).status == "completed"
