"""Take the screenshots of docs/console.md: a real console, Debian's chromium, headless.

    python scripts/console_screenshots.py [OUT_DIR]   (default docs/img/console)

It starts ``reversa console`` on a throwaway SQLite database, runs a few sagas of
the test suite's refund desk (completed, escalated, rolled back), asks for a
four-eyes resolution, signs and witnesses the audit record, and photographs each
main page as a logged-in approver.
Needs the ``dev`` extra (playwright) and the ``chromium`` package; nothing is
downloaded.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from reversa import Engine, Store  # noqa: E402
from reversa.console.accounts import Accounts  # noqa: E402
from reversa.core.evidence import generate_keys  # noqa: E402
from tests.console import flows  # noqa: E402
from tests.console.browser import CHROMIUM_ARGS, chromium, log_in, serve  # noqa: E402
from tests.console.conftest import CHEAP, PASSWORD, USERS  # noqa: E402


def seed(store: Store) -> dict[str, str]:
    """A few sagas in every state worth showing; the ids the pages need."""
    for _ in range(3):
        flows.run(store, fail=False)
    small = flows.run(store, fail=True)
    big = flows.run(store, fail=True, amount=5000)
    undone = flows.run(store, fail=False)
    engine = Engine(flows.registry(), store, services=flows.services(), heartbeat=False)
    try:
        engine.request_rollback(undone.saga_id, by="user:otto", reason="customer cancelled")
    finally:
        engine.close()
    return {"small_saga": small.saga_id, "small": str(small.escalation_id),
            "big": str(big.escalation_id), "undone": undone.saga_id}


def shoot(page: Page, out: Path, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    print(f"wrote {out / name}.png")


def main(out: Path) -> None:
    path = chromium()
    if path is None:
        sys.exit("error: Debian's chromium is not installed; apt-get install chromium")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="reversa-shots-"))
    os.environ["REVERSA_TEST_DESK"] = str(tmp)  # the console compensates what we did
    # A signed, witnessed record (issue 11), so the audit page shows every check.
    generate_keys(tmp / "keys")
    os.environ["REVERSA_SIGNING_KEY"] = str(tmp / "keys" / "reversa-audit.key")
    os.environ["REVERSA_WITNESS_DIR"] = str(tmp / "witness")
    db = f"sqlite:///{tmp}/desk.db"
    store = Store.open(db)
    accounts = Accounts(store, clock=time.time, hasher=CHEAP)
    for name, role in USERS.items():
        accounts.add(name, role, PASSWORD)
    ids = seed(store)
    store.checkpoint()
    policy = tmp / "policy.toml"
    policy.write_text('[four_eyes.refund-desk]\nmin_value = { "*" = 1000 }\n')
    console = serve(db, tmp / "console.log", "--policy", str(policy),
                    "--pubkey", str(tmp / "keys" / "reversa-audit.pub"))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=path, headless=True,
                                        args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(console.url + "/login")
            shoot(page, out, "login")
            log_in(page, console.url, "anna", PASSWORD)
            page.goto(console.url + "/escalations/" + ids["big"])
            page.check("input[value=mark_resolved]")
            page.fill("textarea[name=note]", "refunded by hand, ticket 42")
            page.click("#resolve-form button[type=submit]")
            page.wait_for_selector("#four-eyes")
            shoot(page, out, "approval")
            for name, url in (("overview", "/"), ("sagas", "/sagas"),
                              ("saga", f"/sagas/{ids['small_saga']}"),
                              ("rolled-back", f"/sagas/{ids['undone']}"),
                              ("escalations", "/escalations"),
                              ("escalation", f"/escalations/{ids['small']}"),
                              ("audit", "/audit")):
                page.goto(console.url + url)
                shoot(page, out, name)
            browser.close()
    finally:
        console.stop()
        store.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img" / "console")
