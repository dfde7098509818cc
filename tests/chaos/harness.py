"""Child process for crash tests: runs a 5-step saga and SIGKILLs itself at a boundary.

Usage:
    python -m tests.chaos.harness run DB EFFECTS CRASH POLICY FAIL_LAST LEASE
    python -m tests.chaos.harness worker DB EFFECTS SECONDS

CRASH is ``when:event:step`` (e.g. ``before:compensation_completed:s3``): the process
kills itself with SIGKILL just before or just after the store commit that carries that
audit event. Effects go to a separate SQLite database standing in for the external
services: every call is counted by idempotency key, and an effect is applied once per
key (as a real service deduplicates). Like a real service it also keeps the effect
boundary: a rollback's block tombstones a key that never took effect, and a later
request with that key is refused.
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
    """The external services' state, counted by idempotency key."""

    def __init__(self, path: str) -> None:
        # Compensations run in a thread (cut at the rollback window): share the
        # connection across threads, one statement group at a time.
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None,
                                    check_same_thread=False)
        self.lock = threading.RLock()
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT, step TEXT, kind TEXT)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS applied "
                          "(key TEXT PRIMARY KEY, step TEXT, kind TEXT)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS blocked (key TEXT PRIMARY KEY)")

    def apply(self, ctx: StepContext, kind: str) -> dict[str, Any]:
        if kind == "undo":
            # Slow compensations keep several workers busy at once in the race test.
            time.sleep(float(os.environ.get("REVERSA_CHAOS_UNDO_DELAY", "0")))
        with self.lock:
            return self._apply(ctx, kind)

    def _apply(self, ctx: StepContext, kind: str) -> dict[str, Any]:
        self.conn.execute("INSERT INTO calls VALUES (?, ?, ?)", (ctx.idempotency_key, ctx.step,
                                                                 kind))
        self.conn.execute("BEGIN IMMEDIATE")  # the tombstone check and the effect, atomically
        try:
            if self.conn.execute("SELECT 1 FROM blocked WHERE key = ?",
                                 (ctx.idempotency_key,)).fetchone() is not None:
                raise Fenced(f"key {ctx.idempotency_key} was blocked", code="key_blocked")
            self.conn.execute("INSERT OR IGNORE INTO applied VALUES (?, ?, ?)",
                              (ctx.idempotency_key, ctx.step, kind))
        finally:
            self.conn.execute("COMMIT")
        return {"key": ctx.idempotency_key}

    def block(self, key: str) -> bool:
        """Whether ``key`` took effect; if not, tombstone it (atomically)."""
        with self.lock:
            return self._block(key)

    def _block(self, key: str) -> bool:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if self.happened(key):
                return True
            self.conn.execute("INSERT OR IGNORE INTO blocked VALUES (?)", (key,))
            return False
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
    reg.add("block", "block", lambda ctx: Probe.HAPPENED if effects.block(
        ctx.action_key) else Probe.NOT_HAPPENED)

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

    def write_batch(self, items: Any, *, single: bool = False, **options: Any) -> Any:
        events = [(e.event, e.step) for live, *_ in items for e in live.events]
        self._hit("before", events)
        out = super().write_batch(items, single=single, **options)
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
