"""The governance commands as an operator runs them: approvals, rollback, notify."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.clirun import cli, one_error_line

GOVAPP = Path(__file__).with_name("govapp.py")
CODE = ("--app", "govflows:registry", "--services", "govflows:services")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(GOVAPP, tmp_path / "govflows.py")
    return tmp_path


def _run(project: Path, db: str, mode: str) -> list[str]:
    return subprocess.run([sys.executable, "govflows.py", db, mode], cwd=project,
                          capture_output=True, text=True, timeout=120, check=True).stdout.split()


def _book(project: Path) -> dict[str, int]:
    return dict(json.loads((project / "book.json").read_text()))


def test_held_start_approved_from_the_cli_then_run_by_a_worker(
    project: Path, db_url: str
) -> None:
    saga_id, approval = _run(project, db_url, "submit")
    listed = cli("approvals", "list", "--db", db_url, "--json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert (row["id"], row["kind"], row["requested_by"]) == (int(approval), "start", "agent:bot")
    held = cli("sagas", "list", "--db", db_url, "--status", "awaiting_approval", "--json",
               cwd=project)
    assert [s["id"] for s in json.loads(held.stdout)] == [saga_id]
    own = cli("approvals", "approve", approval, "--by", "agent:bot", "--db", db_url,
              cwd=project)
    assert own.returncode == 2 and "cannot approve it" in one_error_line(own)
    ok = cli("approvals", "approve", approval, "--by", "user:alice", "--note", "fine",
             "--db", db_url, cwd=project)
    assert ok.returncode == 0, ok.stderr
    assert "is now approved" in ok.stdout
    worker = cli("worker", "--once", "--db", db_url, *CODE, cwd=project)
    assert worker.returncode == 0, worker.stderr
    shown = json.loads(cli("sagas", "show", saga_id, "--db", db_url, "--json",
                           cwd=project).stdout)
    assert shown["status"] == "completed" and shown["approvals"][0]["status"] == "executed"
    assert _book(project) == {"alice": 90, "shop": 10}
    assert cli("approvals", "list", "--db", db_url, "--json",
               cwd=project).stdout.strip() == "[]"


def test_operator_rollback_and_a_four_eyes_resolution(project: Path, db_url: str) -> None:
    saga_id, status, _ = _run(project, db_url, "complete")
    assert status == "completed"
    missing = cli("sagas", "rollback", saga_id, "--by", "user:olga", "--db", db_url,
                  cwd=project)
    assert missing.returncode == 2 and "--reason" in one_error_line(missing)
    rolled = cli("sagas", "rollback", saga_id, "--by", "user:olga", "--reason", "duplicate",
                 "--db", db_url, *CODE, cwd=project)
    # unship refuses: the rollback escalates, which the command reports with exit 1.
    assert rolled.returncode == 1 and "escalated" in one_error_line(rolled)
    (esc,) = json.loads(cli("escalations", "list", "--db", db_url, "--json",
                            cwd=project).stdout)
    policy = project / "policy.toml"
    policy.write_text('[four_eyes.order]\nmin_value = { GBP = 1000 }\n')
    proposed = cli("escalations", "resolve", str(esc["id"]), "--action", "mark_resolved",
                   "--author", "user:olga", "--note", "parcel recalled by phone", "--policy",
                   str(policy), "--db", db_url, "--json", cwd=project)
    assert proposed.returncode == 0, proposed.stderr
    approval = json.loads(proposed.stdout)["approval"]
    assert approval["kind"] == "resolution" and "5000 GBP" in approval["reason"]
    no_note = cli("approvals", "reject", str(approval["id"]), "--by", "user:bob", "--db",
                  db_url, cwd=project)
    assert no_note.returncode == 2 and "--note" in one_error_line(no_note)
    done = cli("approvals", "approve", str(approval["id"]), "--by", "user:bob", "--db", db_url,
               "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["saga_status"] == "resolved"
    audit = json.loads(cli("sagas", "show", saga_id, "--db", db_url, "--json",
                           cwd=project).stdout)
    assert audit["escalations"][0]["resolved_by"] == "user:olga"


def test_completed_rollback_within_window(project: Path, db_url: str) -> None:
    (project / "parcel-back").touch()
    saga_id, _, _ = _run(project, db_url, "complete")
    rolled = cli("sagas", "rollback", saga_id[:10], "--by", "user:olga", "--reason",
                 "customer cancelled", "--db", db_url, "--json", *CODE, cwd=project)
    assert rolled.returncode == 0, rolled.stderr
    assert json.loads(rolled.stdout)["status"] == "compensated"
    assert _book(project) == {"alice": 100, "shop": 0}
    again = cli("sagas", "rollback", saga_id, "--by", "user:olga", "--reason", "again",
                "--db", db_url, *CODE, cwd=project)
    assert again.returncode == 2 and "already compensated" in one_error_line(again)


def test_notify_needs_its_secret_and_reads_only_when_listing(tmp_path: Path) -> None:
    config = tmp_path / "notify.toml"
    config.write_text('[[webhook]]\nurl = "https://hooks.test/x"\nsecret_env = "NO_SUCH_VAR"\n')
    db = f"sqlite:///{tmp_path}/r.db"
    proc = cli("notify", "--once", "--config", str(config), "--db", db)
    assert proc.returncode == 2 and "NO_SUCH_VAR is not set" in one_error_line(proc)
    listing = cli("approvals", "list", "--db", str(tmp_path / "missing.db"))
    assert listing.returncode == 2 and not (tmp_path / "missing.db").exists()
