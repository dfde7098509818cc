"""Logins, sessions, CSRF, rate limits and API tokens of the console."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from reversa import Store
from reversa.console.accounts import Accounts
from reversa.core.store import schema as t
from tests.console.conftest import CHEAP, PASSWORD, Clock


def _rows(store: Store, table: Any) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table)).mappings().all()]


def test_no_secret_is_stored_in_clear(console_store: Store, api: Any, app: Any) -> None:
    client = api("otto")
    cookie = client.client.cookies["reversa_session"]
    token, _ = app.state.console.accounts.issue_token("otto", "ci")
    dump = repr([_rows(console_store, tbl) for tbl in (t.users, t.sessions, t.api_tokens)])
    assert PASSWORD not in dump
    assert cookie not in dump
    assert token.split("_", 2)[2] not in dump
    hashes = {r["name"]: r["password_hash"] for r in _rows(console_store, t.users)}
    assert all(h.startswith("$argon2id$") for h in hashes.values())


def test_login_sets_a_protected_cookie_and_rejects_wrong_passwords(api: Any) -> None:
    client = api()
    assert client.login("otto", "wrong password!").status_code == 401
    done = client.login("otto")
    assert done.status_code == 303
    cookie = next(h for h in done.headers.get_list("set-cookie")
                  if h.startswith("reversa_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http on loopback, no --secure-cookies
    assert client.get("/api/me").json() == {"name": "otto", "role": "operator",
                                            "identity": "user:otto"}


def test_cookies_are_secure_behind_tls(console_store: Store, wall: Clock) -> None:
    from reversa.console import ConsoleSettings, create_app
    from tests.console.conftest import Api

    app = create_app(console_store, settings=ConsoleSettings(secure_cookies=True), clock=wall,
                     hasher=CHEAP)
    client = Api(app, base_url="https://console.test")  # a secure cookie travels on https only
    try:
        form = client.get("/login")
        assert "Secure" in form.headers["set-cookie"]
        done = client.post("/login", data={"name": "otto", "password": PASSWORD,
                                           "csrf_token": client.client.cookies["reversa_login"]})
        assert done.status_code == 303 and "Secure" in done.headers["set-cookie"]
    finally:
        client.close()


def test_the_login_form_needs_its_csrf_token(api: Any) -> None:
    client = api()
    client.get("/login")
    forged = client.post("/login", data={"name": "otto", "password": PASSWORD})
    assert forged.status_code == 403
    assert client.get("/api/me").status_code == 401


def test_every_form_post_needs_the_session_csrf_token(api: Any, escalated: Any) -> None:
    _, esc = escalated
    client = api("anna")
    for data in ({}, {"csrf_token": "forged"}):
        refused = client.post(f"/escalations/{esc}/resolve",
                              data={"action": "mark_resolved", "note": "x", **data})
        assert refused.status_code == 403
        assert "CSRF token" in refused.text
    assert client.get(f"/api/escalations/{esc}").json()["status"] == "open"
    # A browser session on the API needs it too (in the header).
    json_refused = client.post(f"/api/escalations/{esc}/resolve",
                               json={"action": "mark_resolved"})
    assert json_refused.status_code == 403
    ok = client.post(f"/api/escalations/{esc}/resolve", json={"action": "mark_resolved"},
                     headers={"X-CSRF-Token": client.csrf})
    assert ok.status_code == 200, ok.text


def test_logout_ends_the_session_everywhere(api: Any) -> None:
    client = api("vera")
    cookie = client.client.cookies["reversa_session"]
    assert client.form("/logout", {}).status_code == 303
    thief = api()
    thief.client.cookies.set("reversa_session", cookie)
    assert thief.get("/api/me").status_code == 401


def test_sessions_end_when_idle_or_old(api: Any, wall: Clock) -> None:
    client = api("vera")
    wall.advance(3600)  # within the 2 h idle limit
    assert client.get("/api/me").status_code == 200
    wall.advance(2 * 3600 + 61)
    assert client.get("/api/me").status_code == 401
    busy = api("vera")
    for _ in range(13):  # used every hour, but a login lasts 12 h at most
        wall.advance(3600)
        last = busy.get("/api/me")
    assert last.status_code == 401


def test_disabling_a_user_ends_sessions_and_tokens(api: Any, app: Any) -> None:
    accounts: Accounts = app.state.console.accounts
    token, _ = accounts.issue_token("otto")
    browser, machine = api("otto"), api(token=token)
    assert browser.get("/api/me").status_code == machine.get("/api/me").status_code == 200
    admin = api("ada")
    assert admin.form("/users/otto/disable", {}).status_code == 303
    assert browser.get("/api/me").status_code == machine.get("/api/me").status_code == 401
    assert api().login("otto").status_code == 401
    admin.form("/users/otto/enable", {})
    assert machine.get("/api/me").status_code == 200
    assert api().login("otto").status_code == 303


def test_revoked_tokens_stop_working(api: Any, app: Any) -> None:
    accounts: Accounts = app.state.console.accounts
    token, issued = accounts.issue_token("vera", "grafana")
    machine = api(token=token)
    assert machine.get("/api/sagas").status_code == 200
    assert accounts.tokens("vera")[0].used_at is not None
    api("ada").form(f"/tokens/{issued.id}/revoke", {})
    assert machine.get("/api/sagas").status_code == 401
    tampered = token[:-2] + ("aa" if not token.endswith("aa") else "bb")
    assert api(token=tampered).get("/api/sagas").status_code == 401


def test_admin_issues_a_token_shown_once(api: Any) -> None:
    admin = api("ada")
    page = admin.form("/users/vera/tokens", {"label": "prometheus"})
    token = re.search(r'id="issued-token">([^<]+)<', page.text)
    assert token is not None
    assert api(token=token[1]).get("/api/me").json()["name"] == "vera"
    assert token[1] not in admin.get("/users").text


def test_logins_are_rate_limited_per_user_and_per_address(api: Any, wall: Clock) -> None:
    client = api()
    for _ in range(5):
        assert client.login("anna", "not her password").status_code == 401
    locked = client.login("anna")  # the right password, but the account is locked
    assert locked.status_code == 429 and "Too many failed logins" in locked.text
    assert client.login("abe").status_code == 303  # another user from the same address
    wall.advance(901)
    assert api().login("anna").status_code == 303
    # Many user names from one address: locked after 20 failures, whatever the name.
    for i in range(20):
        assert client.login(f"guess{i}", "x" * 12).status_code == 401
    assert client.login("vera").status_code == 429


def test_open_redirects_are_refused(api: Any) -> None:
    client = api()
    form = client.get("/login?next=//evil.example/x")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None and 'name="next" value="/"' in form.text
    done = client.post("/login", data={"name": "vera", "password": PASSWORD,
                                       "csrf_token": token[1], "next": "https://evil.example"})
    assert done.headers["location"] == "/"


def test_pages_send_security_headers(api: Any) -> None:
    page = api("vera").get("/sagas")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "<script src=\"/static/htmx.min.js\"" in page.text
    assert api().get("/static/htmx.min.js").status_code == 200  # assets need no login


def test_user_management_through_the_api(api: Any) -> None:
    admin = api("ada")
    made = admin.post("/api/users", json={"name": "zoe", "role": "approver",
                                          "password": "a long passphrase"},
                      headers={"X-CSRF-Token": admin.csrf})
    assert made.status_code == 201, made.text
    taken = admin.post("/api/users", json={"name": "zoe", "role": "viewer",
                                           "password": "a long passphrase"},
                       headers={"X-CSRF-Token": admin.csrf})
    assert taken.status_code == 400 and "already exists" in taken.json()["error"]
    assert api().login("zoe", "a long passphrase").status_code == 303
    assert admin.form("/users/zoe/role", {"role": "viewer"}).status_code == 303
    assert {u["name"]: u["role"] for u in admin.get("/api/users").json()}["zoe"] == "viewer"
    refused = admin.form("/users/ada/disable", {})
    assert refused.status_code == 403 and "yourself" in refused.text


def test_users_and_tokens_over_the_api_alone(api: Any) -> None:
    """An admin's machine does through /api all the users page does."""
    admin = api("ada")
    csrf = {"X-CSRF-Token": admin.csrf}
    assert admin.post("/api/users", json={"name": "Yan", "role": "operator",
                                          "password": "a long passphrase"},
                      headers=csrf).json()["name"] == "yan"  # names are lower case
    assert admin.post("/api/users/yan/role", json={"role": "approver"},
                      headers=csrf).json()["role"] == "approver"
    bad = admin.post("/api/users/yan/role", json={"role": "root"}, headers=csrf)
    assert bad.status_code == 422
    issued = admin.post("/api/users/yan/tokens", json={"label": "ci"}, headers=csrf)
    assert issued.status_code == 201
    secret, token_id = issued.json()["token"], issued.json()["id"]
    machine = api(token=secret)
    assert machine.get("/api/me").json()["name"] == "yan"
    listed = {k["id"]: k for k in admin.get("/api/tokens").json()}
    assert listed[token_id]["label"] == "ci" and "token" not in listed[token_id]
    assert admin.post("/api/users/yan/disable", headers=csrf).json()["disabled"] is True
    assert machine.get("/api/me").status_code == 401  # a disabled user's token stops
    assert admin.post("/api/users/yan/enable", headers=csrf).json()["disabled"] is False
    assert machine.get("/api/me").status_code == 200
    revoked = admin.post(f"/api/tokens/{token_id}/revoke", headers=csrf).json()
    assert revoked["revoked_at"] is not None
    assert machine.get("/api/me").status_code == 401
    me = admin.post("/api/users/ada/disable", headers=csrf)
    assert me.status_code == 403 and "yourself" in me.json()["error"]


def test_the_pages_are_built_on_the_api_alone() -> None:
    """No page handler reaches the service layer or the accounts except through /api's
    functions: whatever a page shows or does, a machine can through the API."""
    import ast
    import inspect

    from reversa.console import pages

    tree = ast.parse(inspect.getsource(pages))
    # Logging in and out opens and ends the browser's session: the API's callers
    # authenticate with tokens instead, so those two are the pages' own.
    sessions = {"login_form", "login", "logout"}
    handlers = [f for f in tree.body if isinstance(f, ast.FunctionDef)
                and f.name not in sessions]
    assert len(handlers) > 15
    for handler in handlers:
        reached = {n.attr for n in ast.walk(handler) if isinstance(n, ast.Attribute)}
        assert not reached & {"service", "accounts", "inspector", "store", "engine"}, \
            handler.name
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    assert "parse_age" not in imported and "Inspector" not in imported
