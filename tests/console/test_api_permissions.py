"""Every permission rule of the console, through its HTTP interface (in process).

Each allowed call aims at an id that does not exist, so it proves the role check
passed (404) without changing anything; each refused call gets 403 (logged in,
wrong role) or 401 / a redirect to /login (nobody logged in).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import USERS

ROLES = ["viewer", "operator", "approver", "admin"]
NAME_OF = {role: next(n for n, r in USERS.items() if r == role) for role in ROLES}

# (method, path, json body, least role allowed, status when allowed)
API_RULES: list[tuple[str, str, dict[str, Any] | None, str, int]] = [
    ("GET", "/api/me", None, "viewer", 200),
    ("GET", "/api/sagas", None, "viewer", 200),
    ("GET", "/api/sagas/nosuchsaga", None, "viewer", 404),
    ("GET", "/api/sagas/nosuchsaga/audit", None, "viewer", 404),
    ("GET", "/api/sagas/nosuchsaga/graph.svg", None, "viewer", 404),
    ("GET", "/api/escalations", None, "viewer", 200),
    ("GET", "/api/escalations/999999", None, "viewer", 404),
    ("GET", "/api/audit/verify", None, "viewer", 200),
    ("GET", "/api/openapi.json", None, "viewer", 200),
    ("POST", "/api/escalations/999999/resolve", {"action": "retry"}, "operator", 404),
    ("POST", "/api/escalations/999999/resolve", {"action": "forward_recovery"}, "approver",
     404),
    ("POST", "/api/escalations/999999/resolve", {"action": "mark_resolved", "note": "x"},
     "approver", 404),
    ("GET", "/api/approvals", None, "viewer", 200),
    ("GET", "/api/approvals/999999", None, "viewer", 404),
    ("POST", "/api/sagas/nosuchsaga/rollback", {"reason": "x"}, "operator", 404),
    ("POST", "/api/approvals/999999/approve", {"note": ""}, "approver", 404),
    ("POST", "/api/approvals/999999/reject", {"note": "no"}, "approver", 404),
    ("GET", "/api/overview", None, "viewer", 200),
    ("GET", "/api/users", None, "admin", 200),
    ("POST", "/api/users", {"name": "bad name", "role": "viewer", "password": "x" * 12},
     "admin", 400),
    ("POST", "/api/users/nobody/disable", None, "admin", 404),
    ("POST", "/api/users/nobody/enable", None, "admin", 404),
    ("POST", "/api/users/nobody/role", {"role": "viewer"}, "admin", 404),
    ("GET", "/api/tokens", None, "admin", 200),
    ("POST", "/api/users/nobody/tokens", {"label": "x"}, "admin", 404),
    ("POST", "/api/tokens/nosuchtoken/revoke", None, "admin", 404),
]

# (method, path, form, least role allowed, status when allowed)
PAGE_RULES: list[tuple[str, str, dict[str, str] | None, str, int]] = [
    ("GET", "/", None, "viewer", 200),
    ("GET", "/sagas", None, "viewer", 200),
    ("GET", "/sagas/nosuchsaga", None, "viewer", 404),
    ("GET", "/escalations", None, "viewer", 200),
    ("GET", "/escalations/999999", None, "viewer", 404),
    ("GET", "/audit", None, "viewer", 200),
    ("POST", "/escalations/999999/resolve", {"action": "retry"}, "operator", 404),
    ("POST", "/escalations/999999/resolve", {"action": "mark_resolved"}, "approver", 404),
    ("POST", "/escalations/999999/resolve", {"action": "forward_recovery"}, "approver", 404),
    ("GET", "/approvals", None, "viewer", 200),
    ("GET", "/approvals/999999", None, "viewer", 404),
    ("POST", "/sagas/nosuchsaga/rollback", {"reason": "x"}, "operator", 404),
    ("POST", "/approvals/999999/approve", {"note": ""}, "approver", 404),
    ("POST", "/approvals/999999/reject", {"note": "no"}, "approver", 404),
    ("GET", "/users", None, "admin", 200),
    ("POST", "/users/nobody/disable", {}, "admin", 404),
    ("POST", "/users/nobody/enable", {}, "admin", 404),
    ("POST", "/users/nobody/role", {"role": "viewer"}, "admin", 404),
    ("POST", "/users/nobody/tokens", {"label": "x"}, "admin", 404),
    ("POST", "/tokens/nosuchtoken/revoke", {}, "admin", 404),
]


def _allowed(role: str, least: str) -> bool:
    return ROLES.index(role) >= ROLES.index(least)


@pytest.mark.parametrize(("method", "path", "body", "least", "ok"), API_RULES,
                         ids=[f"{m} {p} {b and b.get('action', '')}" for m, p, b, *_ in API_RULES])
def test_api_roles_by_token(api: Any, app: Any, method: str, path: str,
                            body: dict[str, Any] | None, least: str, ok: int) -> None:
    from reversa.console.accounts import Accounts

    accounts: Accounts = app.state.console.accounts
    assert api().request(method, path, json=body).status_code == 401  # nobody
    assert api(token="rvt_0000_forged").request(method, path, json=body).status_code == 401
    for role in ROLES:
        token, _ = accounts.issue_token(NAME_OF[role], "test")
        got = api(token=token).request(method, path, json=body)
        expected = ok if _allowed(role, least) else 403
        assert got.status_code == expected, (role, got.text)
        if expected == 403:
            assert "role" in got.json()["error"]


@pytest.mark.parametrize(("method", "path", "form", "least", "ok"), PAGE_RULES,
                         ids=[f"{m} {p} {f and f.get('action', '')}" for m, p, f, *_ in PAGE_RULES])
def test_page_roles_by_session(api: Any, method: str, path: str, form: dict[str, str] | None,
                               least: str, ok: int) -> None:
    anonymous = api().request(method, path, data=form)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login?next=")
    for role in ROLES:
        client = api(NAME_OF[role])
        got = (client.get(path) if method == "GET" else client.form(path, form or {}))
        expected = ok if _allowed(role, least) else 403
        assert got.status_code == expected, (role, got.text[:300])
