"""The console in a real browser: Playwright driving Debian's chromium, headless.

One console process per backend serves every test of this module (it is started
once, on a free loopback port); each test gets a fresh browser context (its own
cookies), as a different person at a different desk would.
"""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from reversa import Inspector, Store
from reversa.console.accounts import Accounts
from tests.conftest import IN_CI
from tests.console import flows
from tests.console.browser import CHROMIUM_ARGS, Served, chromium, log_in, serve
from tests.console.conftest import CHEAP, PASSWORD, USERS
from tests.support import pg

pytestmark = pytest.mark.browser


def _seed(store: Store, **kwargs: Any) -> Any:
    # Playwright's sync API keeps an event loop running on this thread, and a
    # synchronous Engine refuses to run inside one: run the saga on another thread.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(flows.run, store, fail=kwargs.pop("fail", True), **kwargs).result()


def _need(what: str, fix: str) -> None:
    message = f"{what} is not available: {fix}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium under Playwright, for this module's tests.

    Not for the session: Playwright's sync API keeps an event loop running on the
    main thread while it is open, which synchronous Engine calls of later test
    modules must not find.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright", "pip install -e '.[dev]'")
    path = chromium()
    if path is None:
        _need("chromium", "install Debian's 'chromium' package (scripts/test.sh does)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Served, Store]]:
    """A console process on a database with one user per role, and the test's store."""
    tmp = tmp_path_factory.mktemp("console")
    if request.param == "sqlite":
        db = f"sqlite:///{tmp}/reversa.db"
    else:
        server: pg.PgServer = request.getfixturevalue("pg_server")
        db = server.create_database(f"console_{int(time.time() * 1000) % 10**9}")
    store = Store.open(db)
    accounts = Accounts(store, clock=time.time, hasher=CHEAP)
    for name, role in USERS.items():
        accounts.add(name, role, PASSWORD)
    # The console process compensates what this process did: one desk on disk.
    os.environ["REVERSA_TEST_DESK"] = str(tmp)
    policy = tmp / "policy.toml"
    policy.write_text('[four_eyes.refund-desk]\nmin_value = { "*" = 1000 }\n')
    console = serve(db, tmp / "console.log", "--policy", str(policy))
    try:
        yield console, store
    finally:
        console.stop()
        store.close()
        os.environ.pop("REVERSA_TEST_DESK", None)


@pytest.fixture
def page(browser: Any, served: tuple[Served, Store]) -> Iterator[Any]:
    """A fresh browser context (no cookies) and a page in it."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def test_logged_out_access_redirects_to_login(page: Any, served: Any) -> None:
    console, _ = served
    page.goto(console.url + "/escalations")
    assert page.url.startswith(console.url + "/login?next=")
    assert page.locator("h1").inner_text() == "Log in"
    page.fill("input[name=name]", "vera")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(console.url + "/escalations")  # back where the person was going
    # The API answers nobody without a session or a token either.
    assert httpx.get(console.url + "/api/sagas", timeout=30).status_code == 401


def test_log_in_see_the_queue_and_open_a_saga_and_its_graph(page: Any, served: Any) -> None:
    console, store = served
    result = _seed(store)
    log_in(page, console.url, "vera", PASSWORD)
    page.click("nav >> text=Escalations")
    row = page.locator(f'tr[data-escalation="{result.escalation_id}"]')
    assert "refund desk is down" in row.inner_text()
    row.locator("a.mono").click()
    page.wait_for_url(f"**/sagas/{result.saga_id}")
    graph = page.locator("svg.plan-graph")
    graph.wait_for(state="visible")
    states = {g.get_attribute("data-step"): g.get_attribute("data-status")
              for g in graph.locator("g.step").all()}
    assert states == {"charge": "compensation_failed", "reserve": "compensated",
                      "ship": "failed"}
    assert graph.locator('g.step[data-step="reserve"]').get_attribute("data-comp-order") == "1"
    assert page.locator('tr[data-event="escalated"]').count() == 1
    assert page.locator("#audit-status").inner_text().startswith("verified")


def test_resolve_an_escalation_end_to_end(page: Any, served: Any) -> None:
    console, store = served
    result = _seed(store)
    log_in(page, console.url, "anna", PASSWORD)
    page.goto(f"{console.url}/escalations/{result.escalation_id}")
    page.check("input[value=mark_resolved]")
    page.fill("textarea[name=note]", "refunded by hand, ticket 42")
    page.click("#resolve-form button[type=submit]")
    page.wait_for_selector("p.flash.ok")
    assert page.locator("#esc-status").inner_text() == "resolved"
    assert "user:anna" in page.locator("#resolution").inner_text()
    view = Inspector(store).escalation(result.escalation_id)
    assert (view.status, view.resolved_by, view.note) == (
        "resolved", "user:anna", "refunded by hand, ticket 42")
    assert Inspector(store).saga(result.saga_id).status == "resolved"


def test_refused_by_role(page: Any, served: Any) -> None:
    console, store = served
    result = _seed(store)
    log_in(page, console.url, "vera", PASSWORD)
    page.goto(f"{console.url}/escalations/{result.escalation_id}")
    assert page.locator("#resolve-form").count() == 0  # a viewer is offered no action
    # Even a well-formed request from the viewer's own session is refused by the server.
    status = page.evaluate("""async (id) => {
        const csrf = document.querySelector('meta[name=csrf-token]').content;
        const body = new URLSearchParams({csrf_token: csrf, action: 'mark_resolved'});
        const r = await fetch(`/escalations/${id}/resolve`, {method: 'POST', body});
        return r.status; }""", result.escalation_id)
    assert status == 403
    page.goto(console.url + "/users")
    assert page.locator("h1").inner_text() == "Not allowed"
    assert "needs the admin role" in page.locator("p.flash.error").inner_text()
    assert Inspector(store).escalation(result.escalation_id).status == "open"


class _Forger(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        body = (f'<html><body><form id="f" method="post" action="{self.target}">'
                '<input name="action" value="mark_resolved"><input name="note" value="pwned">'
                '</form><button id="go" onclick="document.getElementById(\'f\').submit()">'
                'win a prize</button></body></html>').encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


def test_a_forged_form_without_csrf_token_is_refused(page: Any, served: Any) -> None:
    console, store = served
    result = _seed(store)
    log_in(page, console.url, "anna", PASSWORD)
    # Another page on this machine (same site, other port) posts a form at the console
    # with the approver's cookie, but it cannot know the session's CSRF token.
    handler = type("Forger", (_Forger,), {
        "target": f"{console.url}/escalations/{result.escalation_id}/resolve"})
    forger = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=forger.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{forger.server_address[1]}/")
        with page.expect_navigation():
            page.click("#go")
        assert "CSRF token is missing or wrong" in page.content()
    finally:
        forger.shutdown()
    assert Inspector(store).escalation(result.escalation_id).status == "open"


def test_logging_out_ends_access(page: Any, served: Any) -> None:
    console, _ = served
    log_in(page, console.url, "otto", PASSWORD)
    page.click("text=Log out")
    page.wait_for_url("**/login")
    page.goto(console.url + "/sagas")
    assert page.url.startswith(console.url + "/login?next=")



def test_four_eyes_with_two_users(page: Any, browser: Any, served: Any) -> None:
    console, store = served
    result = _seed(store, amount=5000)  # at or above the policy's 1000: four-eyes
    log_in(page, console.url, "anna", PASSWORD)
    page.goto(f"{console.url}/escalations/{result.escalation_id}")
    page.check("input[value=mark_resolved]")
    page.fill("textarea[name=note]", "refunded by hand")
    page.click("#resolve-form button[type=submit]")
    page.wait_for_selector("#four-eyes")
    assert page.locator("#not-yours").count() == 1  # the requester cannot approve
    assert Inspector(store).escalation(result.escalation_id).status == "open"
    second = browser.new_context()
    try:
        other = second.new_page()
        log_in(other, console.url, "abe", PASSWORD)
        other.click("nav >> text=Approvals")
        row = other.locator("tr[data-approval]", has_text=result.saga_id[:12])
        assert "mark_resolved" in row.inner_text() and "user:anna" in row.inner_text()
        row.locator("a").first.click()
        other.fill("#approve-form textarea[name=note]", "ledger checked")
        other.click("#approve-form button[type=submit]")
        other.wait_for_selector("#approval-outcome")
        assert other.locator("#approval-status").inner_text() == "executed"
        assert other.locator('tr[data-by="user:abe"]').count() == 1
    finally:
        second.close()
    view = Inspector(store).escalation(result.escalation_id)
    assert (view.status, view.resolved_by) == ("resolved", "user:anna")


def test_an_operator_rolls_back_a_completed_saga(page: Any, served: Any) -> None:
    console, store = served
    result = _seed(store, fail=False)
    log_in(page, console.url, "otto", PASSWORD)
    page.goto(f"{console.url}/sagas/{result.saga_id}")
    page.fill("#rollback-form textarea[name=reason]", "customer cancelled")
    page.click("#rollback-form button[type=submit]")
    page.wait_for_selector("#saga-status >> text=compensated")
    steps = {g.get_attribute("data-step"): g.get_attribute("data-status")
             for g in page.locator("svg.plan-graph g.step").all()}
    assert set(steps.values()) == {"compensated"}
    assert flows.DESK.book(result.saga_id) == {"charged": 0, "reserved": 0, "shipped": 0}
    chain = " ".join(str(e.detail) for e in Inspector(store).audit(result.saga_id))
    assert "user:otto" in chain and "customer cancelled" in chain
