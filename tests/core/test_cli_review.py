"""Reviewing escalations of any workflow from the CLI, with or without its code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.clirun import cli, one_error_line

USERAPP = Path(__file__).with_name("userapp.py")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project directory holding myflows.py (and its book)."""
    shutil.copy(USERAPP, tmp_path / "myflows.py")
    return tmp_path


def _start(project: Path, db: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "myflows.py", db], cwd=project, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert out[1] == "escalated", out
    return out[0], int(out[2])


def _book(project: Path) -> dict[str, int]:
    return dict(json.loads((project / "book.json").read_text()))


def _escalation(db: str, esc_id: int, cwd: Path) -> dict[str, object]:
    proc = cli("escalations", "show", str(esc_id), "--db", db, "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_a_user_workflow_is_reviewed_without_its_code(project: Path, db_url: str) -> None:
    saga_id, esc_id = _start(project, db_url)
    # Running its handlers needs its code: a recorded user app is not imported untrusted.
    for args in (("escalations", "resolve", str(esc_id), "--action", "retry", "--author", "o"),
                 ("dry-run", saga_id)):
        proc = cli(*args, "--db", db_url, cwd=project)
        assert proc.returncode == 2
        line = one_error_line(proc)
        assert "'myflows:registry'" in line and "REVERSA_TRUSTED_APPS" in line
        assert "--trust-recorded-app" in line
    assert _escalation(db_url, esc_id, project)["status"] == "open"
    assert _book(project) == {"alice": 90, "shop": 10}  # no handler ran
    # Reviewing does not: from a directory where myflows.py cannot even be imported.
    elsewhere = project / "elsewhere"
    elsewhere.mkdir()
    shown = cli("escalations", "show", str(esc_id), "--db", db_url, cwd=elsewhere)
    assert shown.returncode == 0 and "the refund desk is down" in shown.stdout
    proc = cli("escalations", "resolve", str(esc_id), "--action", "mark_resolved", "--author",
               "alice@ops", "--note", "refunded by hand", "--db", db_url, cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert "is now resolved" in proc.stdout
    esc = _escalation(db_url, esc_id, elsewhere)
    assert (esc["status"], esc["resolved_by"]) == ("resolved", "alice@ops")
    assert cli("audit", "verify", "--db", db_url, cwd=elsewhere).returncode == 0


def test_retry_with_the_recorded_app_found_from_the_current_directory(
    project: Path, db_url: str
) -> None:
    saga_id, esc_id = _start(project, db_url)
    trusted = {"REVERSA_TRUSTED_APPS": "othercorp, myflows"}
    # dry-run imports the recorded registry and services from ./myflows.py, writes nothing.
    dry = cli("dry-run", saga_id[:10], "--db", db_url, "--json", cwd=project, env=trusted)
    assert dry.returncode == 0, dry.stderr
    assert [f["step"] for f in json.loads(dry.stdout)["steps"]] == ["pay"]
    # The refund desk is still down: the retry escalates again, and says so.
    again = cli("escalations", "resolve", str(esc_id), "--action", "retry", "--author", "ops",
                "--db", db_url, cwd=project, env=trusted)
    assert again.returncode == 1
    line = one_error_line(again)
    assert f"escalated saga {saga_id} again (escalation #{esc_id + 1})" in line
    assert "is now escalated" in again.stdout
    # The desk is back; --trust-recorded-app accepts the recorded paths without the list.
    (project / "refund-desk-down").unlink()
    done = cli("escalations", "resolve", str(esc_id + 1), "--action", "retry", "--author", "ops",
               "--trust-recorded-app", "--db", db_url, "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "compensated"
    assert _book(project) == {"alice": 100, "shop": 0}


def test_app_and_services_flags_find_modules_in_the_current_directory(
    project: Path, db_url: str
) -> None:
    _, esc_id = _start(project, db_url)
    (project / "refund-desk-down").unlink()
    proc = cli("escalations", "resolve", str(esc_id), "--action", "retry", "--author", "ops",
               "--app", "myflows:registry", "--services", "myflows:services", "--db", db_url,
               cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "is now compensated" in proc.stdout
    missing = cli("escalations", "resolve", str(esc_id), "--action", "retry", "--author", "o",
                  "--app", "nosuchmod:registry", "--db", db_url, cwd=project)
    assert missing.returncode == 2


BROKEN_AT_IMPORT = """
SETTINGS = {"url": "postgresql://ops:hunter2@db.internal/prod"}
registry = SETTINGS["registry"]  # a KeyError while the module is imported
"""

BROKEN_FACTORY = """
from myflows import registry as _registry


def registry():
    raise KeyError("no region in postgresql://ops:hunter2@db.internal/prod")


def services():
    raise RuntimeError("the vault is sealed")
"""


@pytest.mark.parametrize(("app", "services", "raised"), [
    ("atimport:registry", None, "importing atimport raised KeyError: 'registry'"),
    ("infactory:registry", None, "calling registry() raised KeyError: 'no region in "
                                 "postgresql://ops:***@db.internal/prod'"),
    ("myflows:registry", "infactory:services",
     "calling services() raised RuntimeError: the vault is sealed"),
])
def test_an_app_that_raises_is_bad_input_in_one_line(
    project: Path, db_url: str, app: str, services: str | None, raised: str
) -> None:
    # The user's module or factory is broken: one line naming it and what it raised,
    # exit 2 (not "a bug in Reversa", exit 70), and the escalation stays as it was.
    (project / "atimport.py").write_text(BROKEN_AT_IMPORT)
    (project / "infactory.py").write_text(BROKEN_FACTORY)
    _, esc_id = _start(project, db_url)
    (project / "refund-desk-down").unlink()
    before = _escalation(db_url, esc_id, project)
    flag, spec = ("--services", services) if services else ("--app", app)
    extra = ["--services", services] if services else []
    for args in (["escalations", "resolve", str(esc_id), "--action", "retry", "--author",
                  "ops", "--app", app, *extra],
                 ["worker", "--once", "--app", app, *extra]):
        proc = cli(*args, "--db", db_url, cwd=project)
        assert proc.returncode == 2, proc.stderr
        line = one_error_line(proc)
        assert line.startswith(f"error: {flag} {spec!r}: {raised}; fix that error in your app")
        assert "hunter2" not in proc.stderr and "bug in Reversa" not in line
    assert _escalation(db_url, esc_id, project) == before
    assert _book(project) == {"alice": 90, "shop": 10}  # no handler ran


# The demos run on SQLite only: resolving is backend-independent and runs on both
# backends above; what these show is that no demo's code is needed to close its escalation.
@pytest.mark.parametrize("demo", ["robot-person-in-zone", "evm-market-moved"])
def test_mark_resolved_on_demo_escalations_without_app(demo: str, tmp_path: Path) -> None:
    demo_store = str(tmp_path / "demo.db")
    run = cli("demo", demo, "--db", demo_store, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    (esc,) = json.loads(cli("escalations", "list", "--db", demo_store, "--json").stdout)
    proc = cli("escalations", "resolve", str(esc["id"]), "--action", "mark_resolved",
               "--author", "ops", "--note", "handled at the cell/desk", "--db", demo_store,
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(cli("sagas", "show", esc["saga_id"][:12], "--db", demo_store,
                           "--json").stdout)
    assert shown["status"] == "resolved"
    assert shown["app"].startswith("reversa.") and shown["services"].startswith("reversa.")
