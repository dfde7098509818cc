"""Child processes for the effect-boundary tests: a saga owner and a worker, both reaching
the mock ledger only over HTTP (``python -m reversa.simulators.ledger.http``).

Usage:
    python -m tests.chaos.effect_rig owner --db URL --ledger URL --saga KIND --saga-id ID
        [--gate STEP --gate-dir DIR] [--lease S] [--opts JSON]
    python -m tests.chaos.effect_rig worker --db URL --ledger URL --seconds S
        [--skew S] [--lease S]

The owner prints one JSON line: the saga's end state, or the exception that stopped it.
``--gate STEP`` pauses the owner inside STEP's call to the ledger, after the engine
recorded its intent and before the request is sent: the ledger client writes
``DIR/ready`` and waits for ``DIR/go``, so a test can SIGSTOP or SIGKILL it at that
exact point. ``reversa worker --app tests.chaos.effect_rig:registry --services
tests.chaos.effect_rig:services`` (ledger URL in ``$REVERSA_RIG_LEDGER``) is the
production worker against the same ledger.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from reversa import (
    Engine,
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
from reversa.adapters.payments import (
    AccountRole,
    LedgerConsistency,
    LedgerSnapshot,
    LedgerTransfer,
    TransferRequest,
    payments_registry,
)
from reversa.core.clock import SystemClock
from reversa.core.context import Fence, idempotency_key
from reversa.simulators.ledger.http import HttpLedgerClient

ACCOUNTS = {"alice": ("customer", 1_000_00), "bob": ("customer", 0), "hold": ("holding", 0),
            "ops": ("operating", 1_000_000_00)}
"""The chart of accounts every test ledger starts with (GBP, minor units)."""
FAST = Retry(max_attempts=3, initial_s=0.05, max_s=0.2)
CLIENT_TIMEOUT_S = 60.0  # longer than any injected delay: timeouts here are the engine's


def open_accounts(client: HttpLedgerClient) -> None:
    """Open and fund :data:`ACCOUNTS` (set-up calls carry no fence: no saga makes them)."""
    client.create_account("equity", "GBP", AccountRole.EQUITY.value)
    for name, (role, balance) in ACCOUNTS.items():
        client.create_account(name, "GBP", role,
                              debits_must_not_exceed_credits=role == "customer")
        if balance:
            client.create_transfer(TransferRequest(f"fund:{name}", "equity", name, balance,
                                                   "GBP", code="funding"))


def registry() -> Registry:
    """The payments operations, a step that always fails, and the ledger's checks."""
    reg = payments_registry()
    reg.snapshot("rig.snapshot")(LedgerSnapshot(accounts=tuple(ACCOUNTS)))
    reg.predicate("rig.predicate")(LedgerConsistency())

    @reg.action("rig.reject")
    def reject(ctx: StepContext) -> None:
        raise PermanentError("the partner refuses (injected by the test)")

    @reg.compensation("rig.nothing")
    def nothing(ctx: StepContext) -> dict[str, str]:
        return {"outcome": "nothing_to_undo"}

    return reg


def services() -> dict[str, Any]:
    """For ``reversa worker --services``: the ledger at ``$REVERSA_RIG_LEDGER``."""
    return {"ledger": HttpLedgerClient(os.environ["REVERSA_RIG_LEDGER"],
                                       timeout=CLIENT_TIMEOUT_S)}


def _move(reg: Registry, name: str, debit: str, credit: str, amount: Any, **fields: Any) -> Any:
    return reg.step(name, LedgerTransfer.name, params={
        "debit": debit, "credit": credit, "amount": amount, "currency": "GBP"},
        retry=FAST, compensation_retry=FAST, **fields)


def saga(reg: Registry, kind: str, opts: dict[str, Any]) -> Saga:
    """The sagas of the tests, by kind (``opts`` tunes them)."""
    checks = {"snapshot": "rig.snapshot", "predicate": "rig.predicate"}
    if kind == "two_step":
        steps = [_move(reg, "step1", "alice", "hold", "100.00"),
                 _move(reg, "step2", "hold", "bob", "100.00", depends_on=("step1",))]
        return Saga.chain("rig.two_step", steps, stall_after_s=opts.get("stall_after_s"),
                          **checks)
    if kind == "late":
        steps = [_move(reg, "step1", "alice", "hold", "100.00"),
                 _move(reg, "step2", "hold", "bob", "100.00", timeout_s=opts["timeout_s"]),
                 Step(name="step3", action="rig.reject", compensation="rig.nothing")]
        return Saga.chain("rig.late", steps, **checks)
    if kind == "refund":
        steps = [_move(reg, "refund", "ops", "alice", 40)]
        return Saga.chain("rig.refund", steps, on_crash=OnCrash.RESUME, **checks)
    if kind == "keys":
        return Saga.chain("rig.keys", [_move(reg, opts["step"], "alice", "bob", "1.00")],
                          **checks)
    if kind == "hang_undo":
        steps = [_move(reg, "step1", "alice", "hold", "100.00"),
                 Step(name="step2", action="rig.reject", compensation="rig.nothing")]
        return Saga.chain("rig.hang_undo", steps, rollback_window_s=opts["window_s"],
                          **checks)
    raise SystemExit(f"unknown saga kind {kind!r}")


class GatedLedger(HttpLedgerClient):
    """The HTTP ledger client, paused inside one transfer before the request is sent."""

    def __init__(self, base_url: str, gate_key: str | None, gate_dir: Path | None) -> None:
        super().__init__(base_url, timeout=CLIENT_TIMEOUT_S)
        self.gate_key, self.gate_dir = gate_key, gate_dir

    def create_transfer(self, request: TransferRequest, *, fence: Fence | None = None) -> Any:
        if self.gate_dir is not None and request.id == self.gate_key:
            # Written whole, then renamed: the test polls for the file and reads it at once.
            (self.gate_dir / "ready.part").write_text(json.dumps(
                {"pid": os.getpid(), "fence": None if fence is None else fence.header()}))
            os.replace(self.gate_dir / "ready.part", self.gate_dir / "ready")
            deadline = time.monotonic() + 120
            while not (self.gate_dir / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return super().create_transfer(request, fence=fence)


_REAL_TIME = time.time


class SkewedClock(SystemClock):
    """This host's clock, ``offset`` seconds ahead of the others'."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def now(self) -> float:
        return _REAL_TIME() + self.offset


def _owner(args: argparse.Namespace) -> int:
    reg = registry()
    opts = json.loads(args.opts)
    gate_key = (idempotency_key(args.saga_id, args.gate, "action") if args.gate else None)
    ledger = GatedLedger(args.ledger, gate_key, Path(args.gate_dir) if args.gate_dir else None)
    engine = Engine(reg, Store.open(args.db), services={"ledger": ledger}, lease_s=args.lease,
                    owner=f"owner:{os.getpid()}")
    try:
        result = engine.run(saga(reg, args.saga, opts), {}, saga_id=args.saga_id)
        out: dict[str, Any] = {"status": result.status.value, "error": result.error}
    except Exception as exc:  # the test reads what stopped a fenced-out owner
        out = {"exception": type(exc).__name__, "message": str(exc)}
    print(json.dumps(out), flush=True)
    engine.close()
    return 0


def _worker(args: argparse.Namespace) -> int:
    clock = SkewedClock(args.skew)
    # The whole process runs ahead (its engine's clock and anything else reading
    # time.time); leases must still be judged on database time.
    time.time = clock.now  # type: ignore[assignment]
    worker = Worker(registry(), Store.open(args.db), clock=clock,
                    services={"ledger": HttpLedgerClient(args.ledger, timeout=CLIENT_TIMEOUT_S)},
                    lease_s=args.lease, owner=f"worker:{os.getpid()}")
    finished: list[str] = []
    deadline = time.monotonic() + args.seconds
    rounds = 0
    while time.monotonic() < deadline:
        finished += [r.saga_id for r in worker.run_once()]
        rounds += 1
        time.sleep(0.1)
    worker.engine.close()
    print(json.dumps({"finished": finished, "rounds": rounds,
                      "clock_ahead_s": round(time.time() - _REAL_TIME(), 3)}), flush=True)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tests.chaos.effect_rig")
    parser.add_argument("role", choices=["owner", "worker"])
    parser.add_argument("--db", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--saga", default="two_step")
    parser.add_argument("--saga-id", default=None)
    parser.add_argument("--gate", default=None)
    parser.add_argument("--gate-dir", default=None)
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--opts", default="{}")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--skew", type=float, default=0.0)
    args = parser.parse_args(argv)
    return _owner(args) if args.role == "owner" else _worker(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
