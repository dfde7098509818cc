"""Issue 9, cases 1, 2, 4, 5 and 6, with real processes against the HTTP ledger.

The mock ledger runs as its own process (``python -m reversa.simulators.ledger.http``,
what ``reversa sim ledger`` serves); saga owners and workers are other processes that
reach it only over HTTP, each call carrying its fencing token in ``Reversa-Fence``.
Every assertion about the world is made AT THE LEDGER, from its counters: which keys'
effects landed, which requests it refused and why, how many requests with one key
were in flight at once. Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from reversa import SagaStatus, Store
from reversa.core.canonical import sha256_hex
from reversa.core.context import idempotency_key, key_prefix
from reversa.core.engine.inspect import audit_entries
from reversa.simulators.ledger.http import HttpLedgerClient
from tests.chaos.effect_rig import open_accounts

pytestmark = pytest.mark.chaos
ROOT = Path(__file__).resolve().parents[2]
RIG = "tests.chaos.effect_rig"
APP = ["--app", f"{RIG}:registry"]
WAIT_S = 60.0  # generous limits for a loaded machine; never a speed claim


# -- the ledger process and its counters ---------------------------------------------------
@pytest.fixture
def ledger_url() -> Iterator[str]:
    """A fresh mock ledger in its own process, with the rig's accounts opened."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reversa.simulators.ledger.http", "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        url = re.search(r"http://\S+", banner)
        assert url, f"the ledger did not start: {banner!r}"
        with HttpLedgerClient(url.group(0)) as client:
            open_accounts(client)
        yield url.group(0)
    finally:
        proc.terminate()
        proc.wait(10)


def stats(url: str) -> dict[str, Any]:
    with HttpLedgerClient(url) as client:
        return client.stats()


def balance(url: str, account: str) -> int:
    with HttpLedgerClient(url) as client:
        return client.get_account(account).posted


def key(saga_id: str, step: str, phase: str = "action") -> str:
    return idempotency_key(saga_id, step, phase)


# -- the other processes ------------------------------------------------------------------
def owner(db: str, url: str, saga: str, saga_id: str, *, gate: str | None = None,
          gate_dir: Path | None = None, lease: float = 1.0,
          opts: dict[str, Any] | None = None) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", RIG, "owner", "--db", db, "--ledger", url, "--saga", saga,
            "--saga-id", saga_id, "--lease", str(lease), "--opts", json.dumps(opts or {})]
    if gate is not None:
        args += ["--gate", gate, "--gate-dir", str(gate_dir)]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def outcome(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=WAIT_S)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"no outcome from the process (exit {proc.returncode}): {err[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def wait_ready(gate_dir: Path, proc: subprocess.Popen[str]) -> None:
    """Until the owner sits in the gated call (intent recorded, request not sent)."""
    deadline = time.monotonic() + WAIT_S
    while not (gate_dir / "ready").exists():
        if proc.poll() is not None:
            raise AssertionError(f"the owner ended before the gate: {proc.communicate()}")
        assert time.monotonic() < deadline, "the owner never reached the gated call"
        time.sleep(0.02)


def wait_lease_lapsed(db: str, saga_id: str) -> None:
    store = Store.open(db)
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            row, _ = store.load(saga_id)
            if (row["lease_expires_at"] or 0.0) < store.now():
                return
            assert time.monotonic() < deadline, "the paused owner's lease never lapsed"
            time.sleep(0.05)
    finally:
        store.close()


def reversa(db: str, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REVERSA_RIG_LEDGER": url}
    return subprocess.run([sys.executable, "-m", "reversa", *args, "--db", db], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=WAIT_S)


def worker_once(db: str, url: str) -> subprocess.CompletedProcess[str]:
    proc = reversa(db, url, "worker", "--once", *APP, "--services", f"{RIG}:services",
                   "--lease-s", "30")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def rig_worker(db: str, url: str, seconds: float, skew: float = 0.0) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", RIG, "worker", "--db", db, "--ledger", url, "--seconds",
         str(seconds), "--skew", str(skew), "--lease", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=WAIT_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def saga_record(db: str, saga_id: str) -> tuple[str, list[tuple[str, str | None]], bool]:
    """(status, audit events as (event, step), whether the audit chain verifies)."""
    store = Store.open(db)
    try:
        row, _ = store.load(saga_id)
        events = [(e["event"], e["step"]) for e in audit_entries(store, saga_id)]
        return row["status"], events, store.verify_audit(saga_id).ok
    finally:
        store.close()


# -- case 1: a paused owner ---------------------------------------------------------------
def test_paused_owner_is_refused_after_a_worker_blocked_its_step(
    db_url: str, ledger_url: str, tmp_path: Path
) -> None:
    sid = "paused-owner"
    proc = owner(db_url, ledger_url, "two_step", sid, gate="step2", gate_dir=tmp_path)
    try:
        wait_ready(tmp_path, proc)
        os.kill(proc.pid, signal.SIGSTOP)  # a GC or VM pause, inside step 2's call
        wait_lease_lapsed(db_url, sid)
        worker_once(db_url, ledger_url)  # another process takes over and rolls back
        status, events, verified = saga_record(db_url, sid)
        assert status == SagaStatus.COMPENSATED.value and verified
        (tmp_path / "go").touch()
    finally:
        os.kill(proc.pid, signal.SIGCONT)  # the owner resumes and sends its request
    resumed = outcome(proc)
    assert resumed.get("exception") in ("LeaseLost", "Fenced"), resumed

    at_ledger = stats(ledger_url)
    step2, step1 = key(sid, "step2"), key(sid, "step1")
    assert step2 not in at_ledger["landed"]  # the paused owner's transfer never landed
    assert at_ledger["refused"][step2] == {"epoch": 1}  # refused: a newer owner had called
    assert at_ledger["blocked"] == {step2: 1}  # the worker's block tombstoned it first
    assert at_ledger["landed"][step1] == 1
    assert at_ledger["landed"][key(sid, "step1", "compensation")] == 1  # step 1 corrected
    assert (balance(ledger_url, "alice"), balance(ledger_url, "bob")) == (1_000_00, 0)
    status, events, verified = saga_record(db_url, sid)
    assert status == SagaStatus.COMPENSATED.value and verified  # nothing the owner did after
    assert ("in_doubt_resolved", "step2") in events


def test_worker_with_a_clock_5s_ahead_does_not_take_a_live_lease(
    db_url: str, ledger_url: str, tmp_path: Path
) -> None:
    sid = "skewed-worker"
    proc = owner(db_url, ledger_url, "two_step", sid, gate="step2", gate_dir=tmp_path,
                 lease=2.0)
    wait_ready(tmp_path, proc)
    # The owner heartbeats (lease 2 s, on database time); this worker's clock runs 5 s
    # ahead of it and rounds for longer than the lease.
    seen = rig_worker(db_url, ledger_url, seconds=4.0, skew=5.0)
    assert seen["clock_ahead_s"] >= 5.0 and seen["rounds"] > 3
    assert seen["finished"] == []
    (tmp_path / "go").touch()
    assert outcome(proc) == {"status": "completed", "error": None}
    at_ledger = stats(ledger_url)
    assert at_ledger["landed"][key(sid, "step2")] == 1
    assert at_ledger["refused"] == {}
    status, events, verified = saga_record(db_url, sid)
    assert status == SagaStatus.COMPLETED.value and verified
    assert ("recovered", None) not in events


def test_live_owner_in_a_long_step_is_not_taken_over_by_the_watchdog(
    db_url: str, ledger_url: str, tmp_path: Path
) -> None:
    sid = "long-step"
    # stall_after_s 1 s; the step runs about 4 s while the owner keeps heartbeating.
    proc = owner(db_url, ledger_url, "two_step", sid, gate="step2", gate_dir=tmp_path,
                 lease=1.5, opts={"stall_after_s": 1.0})
    wait_ready(tmp_path, proc)
    seen = rig_worker(db_url, ledger_url, seconds=3.5)
    assert seen["finished"] == [] and seen["rounds"] > 3
    (tmp_path / "go").touch()
    assert outcome(proc) == {"status": "completed", "error": None}
    at_ledger = stats(ledger_url)
    assert at_ledger["landed"][key(sid, "step2")] == 1 and at_ledger["refused"] == {}
    status, events, verified = saga_record(db_url, sid)
    assert status == SagaStatus.COMPLETED.value and verified
    assert not {("recovered", None), ("watchdog_stalled", None)} & set(events)


# -- case 2: an effect that lands after the step timed out --------------------------------
@pytest.mark.parametrize(("latency_s", "landed"), [(4.5, False), (2.2, True)],
                         ids=["lands-after-the-grace-blocked", "lands-within-the-grace"])
def test_late_effect_after_a_timeout_is_refused_or_compensated(
    db_url: str, ledger_url: str, latency_s: float, landed: bool
) -> None:
    sid = "late-effect"
    step2 = key(sid, "step2")
    with HttpLedgerClient(ledger_url) as client:  # step 2's request is slow at the ledger
        client.inject_fault("create_transfer", "latency", latency_s=latency_s,
                            match={"id": step2})
    # timeout 1.5 s, three attempts allowed; the engine waits one more timeout for it.
    result = outcome(owner(db_url, ledger_url, "late", sid, opts={"timeout_s": 1.5}))
    assert result.get("status") == SagaStatus.COMPENSATED.value, result

    deadline = time.monotonic() + WAIT_S  # the late request reaches the ledger at last
    while not (stats(ledger_url)["landed"].get(step2) or
               stats(ledger_url)["refused"].get(step2)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    at_ledger = stats(ledger_url)
    assert at_ledger["max_concurrent"][step2] == 1  # no retry overlapped the slow attempt
    if landed:
        # It landed within the grace: it was the attempt's result, and it was undone.
        assert at_ledger["landed"][step2] == 1
        assert at_ledger["landed"][key(sid, "step2", "compensation")] == 1
        assert step2 not in at_ledger["refused"]
    else:
        # Still running after the grace: the rollback blocked its key, the late
        # request was refused when it arrived, nothing stands.
        assert step2 not in at_ledger["landed"]
        assert at_ledger["refused"][step2] == {"tombstone": 1}
        assert at_ledger["blocked"] == {step2: 1}
    assert (balance(ledger_url, "alice"), balance(ledger_url, "bob")) == (1_000_00, 0)
    status, events, verified = saga_record(db_url, sid)
    assert status == SagaStatus.COMPENSATED.value and verified
    assert events.count(("step_started", "step2")) == 1  # never retried


# -- case 4: a tampered plan --------------------------------------------------------------
@pytest.mark.parametrize("rehash", [False, True], ids=["hash-kept", "hash-recomputed"])
def test_tampered_plan_is_never_executed(
    db_url: str, ledger_url: str, tmp_path: Path, rehash: bool
) -> None:
    sid = "tampered"
    proc = owner(db_url, ledger_url, "refund", sid, gate="refund", gate_dir=tmp_path)
    wait_ready(tmp_path, proc)
    proc.kill()  # the owner dies inside the refund's call: in doubt, to be resumed
    proc.communicate(timeout=WAIT_S)
    store = Store.open(db_url)
    with store.engine.begin() as conn:
        plan = conn.execute(text("SELECT plan_json FROM reversa_sagas WHERE id = :id"),
                            {"id": sid}).scalar_one()
        edited = re.sub(r'"amount":40(?=[,}])', '"amount":4000', plan)
        assert edited != plan
        fields = {"plan": edited, "id": sid, "hash": sha256_hex(edited)}
        sql = "UPDATE reversa_sagas SET plan_json = :plan" + (
            ", plan_hash = :hash" if rehash else "") + " WHERE id = :id"
        conn.execute(text(sql), fields)
    store.close()
    wait_lease_lapsed(db_url, sid)

    worker_once(db_url, ledger_url)
    status, events, verified = saga_record(db_url, sid)
    assert status == SagaStatus.ESCALATED.value
    assert ("plan_tampered", None) in events
    assert not verified  # the audit check names the edited plan too
    store = Store.open(db_url)
    (escalation,) = store.rows("escalations", saga_id=sid)
    store.close()
    assert "plan tampered" in escalation["reason"]

    dry = reversa(db_url, ledger_url, "dry-run", sid, *APP)
    retry = reversa(db_url, ledger_url, "escalations", "resolve", str(escalation["id"]),
                    "--action", "retry", "--author", "test", *APP)
    for refused in (dry, retry):
        assert refused.returncode != 0
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "plan tampered" in refused.stderr and "Traceback" not in refused.stderr

    at_ledger = stats(ledger_url)
    assert not [k for k in at_ledger["landed"] if k.startswith(key_prefix(sid))]
    assert balance(ledger_url, "alice") == 1_000_00  # no refund of 4,000 (nor of 40)
    assert saga_record(db_url, sid)[0] == SagaStatus.ESCALATED.value


# -- case 5: keys that used to collide ----------------------------------------------------
def test_saga_a_b_step_c_and_saga_a_step_b_c_book_separately(
    db_url: str, ledger_url: str
) -> None:
    first = owner(db_url, ledger_url, "keys", "a:b", opts={"step": "c"})
    assert outcome(first)["status"] == SagaStatus.COMPLETED.value
    second = owner(db_url, ledger_url, "keys", "a", opts={"step": "b:c"})
    assert outcome(second)["status"] == SagaStatus.COMPLETED.value
    landed = stats(ledger_url)["landed"]
    assert key("a:b", "c") != key("a", "b:c")
    assert (landed[key("a:b", "c")], landed[key("a", "b:c")]) == (1, 1)
    assert balance(ledger_url, "bob") == 2_00  # both transfers booked, neither a replay


# -- case 6: a compensation that hangs ----------------------------------------------------
def test_hanging_compensation_is_cut_off_at_the_rollback_window(
    db_url: str, ledger_url: str
) -> None:
    sid = "hanging-undo"
    undo = key(sid, "step1", "compensation")
    with HttpLedgerClient(ledger_url) as client:  # the correction hangs at the ledger
        client.inject_fault("create_transfer", "stall", match={"id": undo})
    proc = owner(db_url, ledger_url, "hang_undo", sid, opts={"window_s": 2.0})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the engine reports while the call still hangs
        assert json.loads(line)["status"] == SagaStatus.ESCALATED.value, line
        at_ledger = stats(ledger_url)
        assert at_ledger["stalled"] and undo not in at_ledger["landed"]
    finally:
        with HttpLedgerClient(ledger_url) as client:
            client.release_stalls()
        proc.communicate(timeout=WAIT_S)
    status, events, verified = saga_record(db_url, sid)
    assert status == SagaStatus.ESCALATED.value and verified
    assert ("compensation_failed", "step1") in events
    assert ("saga_compensated", None) not in events
