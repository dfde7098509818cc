"""The audit page runs issue 11's verification (signatures, witnesses), read-only;
``/metrics`` serves the store's Prometheus metrics behind the same login."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reversa import Store
from reversa.console import AuditKeys, create_app
from reversa.console.accounts import Accounts
from reversa.core.evidence import DirWitness, load_verifier
from tests.audit.kit import Evidence, dump, evidence_store, rechain
from tests.console.conftest import CHEAP, PASSWORD, Api

ACCOUNT_TABLES = {"reversa_users", "reversa_sessions", "reversa_api_tokens"}


@pytest.fixture
def ev(db_url: str, tmp_path: Path) -> Iterator[Evidence]:
    """A signed, witnessed store (issue 11's kit) with a console viewer."""
    with evidence_store(db_url, tmp_path) as built:
        Accounts(built.store, clock=time.time, hasher=CHEAP).add("vera", "viewer", PASSWORD)
        yield built


def _viewer(app: Any) -> Api:
    client = Api(app)
    assert client.login("vera").status_code == 303
    return client


def _record(store: Store) -> dict[str, Any]:
    return {k: v for k, v in dump(store).items() if k not in ACCOUNT_TABLES}


def test_the_audit_page_checks_signatures_and_witnesses_read_only(ev: Evidence) -> None:
    keyed = _viewer(create_app(ev.store, hasher=CHEAP, audit=AuditKeys(
        (load_verifier(ev.pub),), (DirWitness(ev.witness),))))
    plain = _viewer(create_app(ev.store, hasher=CHEAP))  # the store's own witness, no key
    try:
        before = _record(ev.store)
        page = keyed.get("/audit").text
        assert 'data-ok="true"' in page
        assert "head signatures (keys" in page and "checkpoint(s) held by" in page
        assert 'id="audit-notes"' not in page  # nothing left unchecked
        unkeyed = plain.get("/audit").text
        assert 'data-ok="true"' in unkeyed and "signatures not checked" in unkeyed
        saga = keyed.get(f"/sagas/{ev.sagas['later']}").text
        assert "head signature checked" in saga
        assert _record(ev.store) == before  # verifying wrote nothing

        # A thorough rewrite: entries edited, the chain and the head recomputed.
        sid = ev.sagas["completed"]
        rechain(ev, sid, lambda rows: next(
            r for r in rows if r["event"] == "step_completed").update(outcome="ok:redirected"))
        (row,) = ev.store.rows("sagas", id=sid)
        ev.sql("UPDATE reversa_heads SET head = :h WHERE saga_id = :s",
               h=row["audit_head"], s=sid)
        page = keyed.get("/audit").text
        assert 'data-ok="false"' in page and 'data-kind="bad_signature"' in page
        assert f'<a href="/sagas/{sid}">' in page
        # Without the key the store's witness still names the rewritten log.
        assert 'data-kind="log_edited"' in plain.get("/audit").text
        report = keyed.get("/api/audit/verify").json()
        assert report["ok"] is False and "bad_signature" in {p["kind"] for p in report["problems"]}
        assert any("head signatures" in c for c in report["checked"])
        assert "TAMPERED" in keyed.get(f"/sagas/{sid}").text
    finally:
        keyed.close()
        plain.close()


def test_metrics_need_a_login_and_read_the_store(api: Any, app: Any,
                                                 escalated: tuple[str, int]) -> None:
    assert api().get("/metrics").status_code == 401
    scraped = api("vera").get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert 'reversa_sagas{status="escalated",workflow="refund-desk"} 1.0' in text
    assert 'reversa_escalations_open{workflow="refund-desk"} 1.0' in text
    token, _ = app.state.console.accounts.issue_token("vera", "prometheus")
    assert api(token=token).get("/metrics").status_code == 200
