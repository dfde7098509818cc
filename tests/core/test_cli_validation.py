"""Every option of bench, worker, sim and demo is checked: bad values are ONE line, exit 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reversa import Store

PG_URL = "postgresql://bench@127.0.0.1:1/nowhere"  # never contacted: rejected before


def reversa(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reversa", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def assert_one_line_usage_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


BAD = {
    "bench-sagas-0": (["bench", "--sagas", "0"], ["--sagas"]),
    "bench-sagas-negative": (["bench", "--sagas", "-1"], ["--sagas"]),
    "bench-steps-0": (["bench", "--steps", "0"], ["--steps"]),
    "bench-concurrency-0": (["bench", "--concurrency", "0"], ["--concurrency"]),
    "bench-workers-0": (["bench", "--workers", "0"], ["--workers"]),
    "bench-synchronous-bogus": (["bench", "--synchronous", "BOGUS"], ["--synchronous", "full"]),
    "bench-lease-0": (["bench", "--lease-s", "0"], ["--lease-s"]),
    "bench-trace-bogus": (["bench", "--trace", "bogus"], ["--trace", "processor"]),
    "bench-trace-with-workers": (["bench", "--trace", "processor", "--workers", "2", "--db",
                                  PG_URL], ["--trace processor", "drop --workers"]),
    "bench-workers-on-default-sqlite": (["bench", "--workers", "2"],
                                        ["PostgreSQL", "--db postgresql://"]),
    "bench-workers-on-sqlite-file": (["bench", "--workers", "2", "--db", "x.db"],
                                     ["PostgreSQL", "--db postgresql://"]),
    "bench-more-workers-than-sagas": (["bench", "--workers", "3", "--sagas", "2", "--db",
                                       PG_URL], ["--workers 3", "--sagas 2"]),
    "worker-lease-0": (["worker", "--lease-s", "0"], ["--lease-s"]),
    "worker-poll-negative": (["worker", "--poll-s", "-1"], ["--poll-s"]),
    "worker-poll-0": (["worker", "--poll-s", "0"], ["--poll-s"]),
    "worker-batch-0": (["worker", "--batch", "0"], ["--batch"]),
    "worker-stall-0": (["worker", "--stall-after-s", "0"], ["--stall-after-s"]),
    "worker-log-format": (["worker", "--log-format", "xml"], ["--log-format", "json"]),
    "sim-port-too-big": (["sim", "ledger", "--port", "99999"], ["--port", "65535"]),
    "sim-port-negative": (["sim", "ledger", "--port", "-1"], ["--port"]),
    "sim-unknown": (["sim", "nope"], ["'nope'", "ledger"]),
    "sim-gripper-has-no-port": (["sim", "gripper", "--port", "5000"], ["drop --port"]),
    "demo-unknown": (["demo", "nope"], ["no demo scenario 'nope'"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_option_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    args, needles = BAD[case]
    assert_one_line_usage_error(reversa(*args, cwd=tmp_path), *needles)
    assert list(tmp_path.iterdir()) == []  # rejected before anything was created


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("name", ["ledger", "rosbridge"])
def test_busy_port_is_one_line(name: str, busy_port: int) -> None:
    proc = reversa("sim", name, "--port", str(busy_port))
    assert_one_line_usage_error(proc, f"port {busy_port}", "already in use", "--port 0")


def test_one_step_bench_is_supported(tmp_path: Path) -> None:
    """One failing step: nothing to compensate, each saga ends 'failed' (1 call each)."""
    db = tmp_path / "b.db"
    proc = reversa("bench", "--sagas", "4", "--steps", "1", "--json", "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["steps_per_s"] > 0 and out["sagas_per_s"] == pytest.approx(out["steps_per_s"])
    assert "p50_step_ms" not in out  # no gap between two calls of one saga to measure
    rows = Store.open(str(db)).list_sagas()
    assert len(rows) == 4 and {r["status"] for r in rows} == {"failed"}


def test_bench_synchronous_is_case_insensitive(tmp_path: Path) -> None:
    proc = reversa("bench", "--sagas", "2", "--steps", "2", "--synchronous", "normal",
                   "--json", "--db", str(tmp_path / "b.db"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["synchronous"] == "NORMAL"


def test_bench_workers_scale_out_on_postgres(pg_server: object) -> None:
    from tests.support import pg

    assert isinstance(pg_server, pg.PgServer)
    url = pg_server.create_database("bench_workers")
    proc = reversa("bench", "--workers", "2", "--sagas", "6", "--steps", "2", "--json",
                   "--db", url)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["workers"] == 2 and len(out["per_worker_steps_per_s"]) == 2
    rows = Store.open(url).list_sagas()
    assert len(rows) == 6 and {r["status"] for r in rows} == {"compensated"}
