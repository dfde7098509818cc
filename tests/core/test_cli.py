"""The operator CLI, driven as a user would, with --json on stdout only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "reversa", *args], capture_output=True,
                          text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    db = str(tmp_path_factory.mktemp("cli") / "demo.db")
    out = cli("demo", "--db", db).stdout
    assert "ended compensated" in out and "audit chain: verified" in out
    assert Path(db).exists()
    return db


def test_demo_list_names_the_scenarios() -> None:
    out = cli("demo", "--list").stdout
    assert "onboarding" in out


def test_demo_json_is_machine_readable(tmp_path: Path) -> None:
    out = json.loads(cli("demo", "--db", str(tmp_path / "d.db"), "--json").stdout)
    assert out["exit_code"] == 0 and out["audit_ok"] is True
    (saga,) = out["sagas"]
    assert saga["status"] == "compensated" and saga["failed_step"] == "activate_market_data"
    assert saga["rollbacks"][0]["predicate_ok"] is True


def test_unknown_demo_is_a_clear_error() -> None:
    proc = cli("demo", "nope", check=False)
    assert proc.returncode == 2 and "no demo scenario 'nope'" in proc.stderr


def test_sagas_list_and_show_json(demo_db: str) -> None:
    rows = json.loads(cli("sagas", "list", "--db", demo_db, "--json").stdout)
    assert len(rows) == 1 and rows[0]["status"] == "compensated"
    assert json.loads(cli("sagas", "list", "--db", demo_db, "--json", "--status",
                          "escalated").stdout) == []
    assert json.loads(cli("sagas", "list", "--db", demo_db, "--json", "--workflow",
                          "client-onboarding", "--newer-than", "1h").stdout)
    assert json.loads(cli("sagas", "list", "--db", demo_db, "--json", "--older-than",
                          "1h").stdout) == []
    view = json.loads(cli("sagas", "show", rows[0]["id"], "--db", demo_db, "--json").stdout)
    steps = {s["name"]: s for s in view["steps"]}
    assert steps["activate_market_data"]["attempts"] == 3
    assert steps["open_account"]["status"] == "compensated"
    assert all(a["started_at"] and a["finished_at"] for a in steps["open_account"]["history"])
    order = [c["step"] for c in view["rollbacks"][0]["record"]["compensations"]]
    assert order.index("open_account") < order.index("create_client")  # scenario B


def test_dry_run_any_time(demo_db: str) -> None:
    sid = json.loads(cli("sagas", "list", "--db", demo_db, "--json").stdout)[0]["id"]
    report = json.loads(cli("dry-run", sid, "--db", demo_db, "--json").stdout)
    assert report["feasible"] is True and report["steps"] == []  # nothing left to undo


def test_audit_verify_and_escalations(demo_db: str) -> None:
    assert json.loads(cli("audit", "verify", "--db", demo_db, "--json").stdout)["ok"]
    assert json.loads(cli("escalations", "list", "--db", demo_db, "--json").stdout) == []


def test_bad_db_url_is_a_clear_error(tmp_path: Path) -> None:
    proc = cli("sagas", "list", "--db", "mysql://x/y", check=False)
    assert proc.returncode == 2 and "unsupported database 'mysql'" in proc.stderr


@pytest.mark.parametrize("how", ["processor", "tracer"])
def test_bench_with_tracing_records_every_span(tmp_path: Path, how: str) -> None:
    out = json.loads(cli("bench", "--sagas", "3", "--steps", "2", "--trace", how, "--json",
                         "--db", str(tmp_path / "b.db")).stdout)
    assert out["trace"] == how
    # Per saga: its own span, 2 steps, 1 compensation (the last step fails).
    assert out["spans_recorded"] == 3 * 4
    assert out["steps_per_s"] > 0
    plain = json.loads(cli("bench", "--sagas", "3", "--steps", "2", "--json", "--db",
                           str(tmp_path / "c.db")).stdout)
    assert plain["trace"] == "off" and "spans_recorded" not in plain


def test_bench_json_has_the_figures(tmp_path: Path) -> None:
    out = json.loads(cli("bench", "--sagas", "10", "--steps", "3", "--json", "--db",
                         str(tmp_path / "b.db")).stdout)
    for key in ("sagas_per_s", "steps_per_s", "p50_step_ms", "p99_step_ms", "plain_loop",
                "overhead_ratio"):
        assert key in out
    assert out["steps_per_s"] > 0 and out["plain_loop"]["steps_per_s"] > out["steps_per_s"]
