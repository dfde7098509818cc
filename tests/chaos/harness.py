"""Child process for crash tests: runs a 5-step saga and SIGKILLs itself at a boundary.

Usage:
    python -m tests.chaos.harness run DB EFFECTS CRASH POLICY FAIL_LAST LEASE
    python -m tests.chaos.harness worker DB EFFECTS SECONDS

CRASH is ``when:event:step`` (e.g. ``before:compensation_completed:s3``): the process
kills itself with SIGKILL just before or just after the store commit that carries that
audit event. Effects go to a separate SQLite database standing in for the external
services: every call that reaches them is counted, an effect is applied once per key (as
a real service deduplicates), and stale fencing tokens and blocked keys are refused.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import threading
import time
from typing import Any

from reversa import (
    Engine,
    Fenced,
    OnCrash,
    PermanentError,
    Registry,
    Retry,
    Saga,
    Step,
    StepContext,
    Store,
    Worker,
)

STEPS = ["s1", "s2", "s3", "s4", "s5"]


class Effects:
    """The external services: every call counted, effects applied once per key.

    Like a real service it keeps the effect boundary (in its own database, in the
    transaction that applies the effect): it refuses a call whose fencing token is
    older than one it has seen for the saga, and a key a rollback blocked.
    """

    def __init__(self, path: str) -> None:
        # Compensations run in a thread (they are cut at the rollback window): the
        # client is shared across threads, one call at a time.
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None,
                                    check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS calls "
                          "(key TEXT, step TEXT, kind TEXT, saga TEXT)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS applied "
                          "(key TEXT PRIMARY KEY, step TEXT, kind TEXT, saga TEXT)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS epochs (saga TEXT PRIMARY KEY, "
                          "epoch INTEGER)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS tombstones (key TEXT PRIMARY KEY)")

    def _admit(self, ctx: StepContext) -> None:
        row = self.conn.execute("SELECT epoch FROM epochs WHERE saga = ?",
                                (ctx.saga_id,)).fetchone()
        if row is not None and ctx.fencing_token < row[0]:
            raise Fenced(f"fencing token {ctx.fencing_token} is older than {row[0]}")
        self.conn.execute("INSERT OR REPLACE INTO epochs VALUES (?, ?)",
                          (ctx.saga_id, max(ctx.fencing_token, row[0] if row else 0)))

    def apply(self, ctx: StepContext, kind: str) -> dict[str, Any]:
        if kind == "undo":
            # Slow compensations keep several workers busy at once in the race test.
            time.sleep(float(os.environ.get("REVERSA_CHAOS_UNDO_DELAY", "0")))
        with self.lock:
            return self._apply(ctx, kind)

    def _apply(self, ctx: StepContext, kind: str) -> dict[str, Any]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            # Every request that reaches the service is counted, refused or not.
            self.conn.execute("INSERT INTO calls VALUES (?, ?, ?, ?)",
                              (ctx.idempotency_key, ctx.step, kind, ctx.saga_id))
            self._admit(ctx)
            self._check_key(ctx.idempotency_key)
            self.conn.execute("INSERT OR IGNORE INTO applied VALUES (?, ?, ?, ?)",
                              (ctx.idempotency_key, ctx.step, kind, ctx.saga_id))
        finally:
            self.conn.execute("COMMIT")
        return {"step": ctx.step}

    def _check_key(self, key: str) -> None:
        if self.conn.execute("SELECT 1 FROM tombstones WHERE key = ?", (key,)).fetchone():
            raise Fenced(f"key {key} was blocked by a rollback")

    def block(self, ctx: StepContext) -> Any:
        from reversa import Probe

        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self._admit(ctx)
                if self.happened(ctx.action_key):
                    return Probe.HAPPENED
                self.conn.execute("INSERT OR IGNORE INTO tombstones VALUES (?)",
                                  (ctx.action_key,))
                return Probe.NOT_HAPPENED
            finally:
                self.conn.execute("COMMIT")

    def happened(self, key: str) -> bool:
        with self.lock:
            return self.conn.execute("SELECT 1 FROM applied WHERE key = ?",
                                     (key,)).fetchone() is not None


def registry(effects: Effects) -> Registry:
    from reversa import Probe

    reg = Registry()
    reg.add("action", "do", lambda ctx: effects.apply(ctx, "do"))
    reg.add("compensation", "undo", lambda ctx: effects.apply(ctx, "undo"))
    reg.add("probe", "probe", lambda ctx: Probe.HAPPENED if effects.happened(
        ctx.action_key) else Probe.NOT_HAPPENED)
    reg.add("block", "block", effects.block)

    def fail(ctx: StepContext) -> None:
        raise PermanentError("s5 is rejected by the partner")

    reg.add("action", "fail", fail)
    reg.add("snapshot", "snap", lambda ctx: {"steps": len(STEPS)})
    return reg


def saga(policy: str, fail_last: bool) -> Saga:
    once = Retry(max_attempts=1)
    steps = [Step(name=n, action="fail" if fail_last and n == "s5" else "do",
                  compensation="undo", probe="probe", block="block", retry=once,
                  compensation_retry=once)
             for n in STEPS]
    return Saga.chain("chaos", steps, snapshot="snap", on_crash=OnCrash(policy))


class CrashStore(Store):
    """Kills the process at one commit boundary."""

    crash: tuple[str, str, str] = ("", "", "")

    def _hit(self, when: str, events: list[tuple[str, str | None]]) -> None:
        w, event, step = self.crash
        if w == when and (event, step) in events:
            os.kill(os.getpid(), signal.SIGKILL)

    def write_batch(self, items: Any, **kwargs: Any) -> Any:
        events = [(e.event, e.step) for live, *_ in items for e in live.events]
        self._hit("before", events)
        out = super().write_batch(items, **kwargs)
        self._hit("after", events)
        return out


def main(argv: list[str]) -> int:
    mode, db, effects_path = argv[0], argv[1], argv[2]
    effects = Effects(effects_path)
    if mode == "run":
        crash, policy, fail_last, lease = argv[3], argv[4], argv[5] == "1", float(argv[6])
        store = CrashStore(Store.open(db).engine)
        store.crash = tuple(crash.split(":"))  # type: ignore[assignment]
        engine = Engine(registry(effects), store, lease_s=lease, heartbeat=False)
        result = engine.run(saga(policy, fail_last))
        print(result.status.value)
        return 0
    seconds = float(argv[3])
    worker = Worker(registry(effects), Store.open(db), lease_s=5, stall_after_s=3600, batch=1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        worker.run_once()
        if not worker.store.list_sagas(status=["running", "compensating"]):
            break
        time.sleep(0.05)
    worker.engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def cli_registry() -> Registry:
    """For ``reversa worker --app tests.chaos.harness:cli_registry`` (effects path from env)."""
    return registry(Effects(os.environ["REVERSA_CHAOS_EFFECTS"]))
