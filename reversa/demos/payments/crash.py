"""AG-166 scenario C across processes: an agent killed mid-compensation, finished by another.

The ledger and FX venue run in the parent process (served over loopback by
:mod:`reversa.simulators.ledger.http`); the parent arms a *stall* fault on one
compensation call, starts the agent, waits until the stalled call arrives,
kills the agent with SIGKILL, and starts a recovery process that calls
``Engine.recover(saga_id)``. Both children reach the bank only over HTTP::

    python -m reversa.demos.payments.crash agent   --db URL --sim URL --saga-id ID
    python -m reversa.demos.payments.crash recover --db URL --sim URL --saga-id ID

:func:`run_crash_story` is that parent, used by the chaos test and the example.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reversa.core.clock import SystemClock
from reversa.core.context import idempotency_key
from reversa.core.engine import Engine
from reversa.core.errors import LeaseLost
from reversa.core.states import Phase
from reversa.core.store import Store

from . import APP, SERVICES, cross_border, registry
from .world import PaymentsWorld, build_world

__all__ = ["CrashOutcome", "main", "run_crash_story"]

MODULE = "reversa.demos.payments.crash"


def _services(sim_url: str) -> dict[str, Any]:
    from reversa.simulators.fx_exchange import SimFxExchange
    from reversa.simulators.ledger.http import HttpLedgerClient

    return {"ledger": HttpLedgerClient(sim_url), "fx": SimFxExchange(base_url=sim_url)}


def _agent(db: str, sim: str, saga_id: str) -> int:
    reg = registry()
    store = Store.open(db)
    # A short lease, so the recovering process may take over soon after the kill.
    engine = Engine(reg, store, clock=SystemClock(), services=_services(sim), lease_s=1.0,
                    owner=f"agent:{os.getpid()}")
    saga = cross_border.saga(reg, app=APP, services=SERVICES)
    result = engine.run(saga, cross_border.INPUT, saga_id=saga_id)
    print(json.dumps({"status": result.status.value}), flush=True)
    return 0


def _recover(db: str, sim: str, saga_id: str, patience_s: float) -> int:
    reg = registry()
    store = Store.open(db)
    engine = Engine(reg, store, clock=SystemClock(), services=_services(sim),
                    owner=f"worker:{os.getpid()}")
    deadline = time.monotonic() + patience_s
    while True:
        try:
            result = engine.recover(saga_id, reason="agent killed (SIGKILL) mid-compensation")
            break
        except LeaseLost:
            # The dead agent's lease has not lapsed yet; poll until it does.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    engine.close()
    print(json.dumps({"status": result.status.value, "error": result.error}), flush=True)
    return 0


@dataclass
class CrashOutcome:
    """What the parent observed.

    Attributes:
        saga_id: The saga.
        agent_returncode: The agent's exit code (``-SIGKILL`` when killed).
        recover_output: The recovering process' JSON line.
        world: The bank, as the two processes left it.
    """

    saga_id: str
    agent_returncode: int | None
    recover_output: dict[str, Any]
    world: PaymentsWorld


def run_crash_story(
    db_url: str, *, stall_on: str = "fx_corrections", applied: bool = False,
    timeout_s: float = 60.0,
) -> CrashOutcome:
    """Run the agent, SIGKILL it at the stalled call, recover in another process.

    Args:
        db_url: Store both processes share (a file-backed SQLite URL or PostgreSQL).
        stall_on: ``"fx_corrections"`` (the ledger corrections of the reversed
            conversion, after the venue reversed it) or ``"recredit"`` (the
            correction that gives the sender the money back).
        applied: Whether the stalled call took effect before the kill.
        timeout_s: Limit for each child.
    """
    from reversa.simulators.ledger.faults import FaultKind
    from reversa.simulators.ledger.http import start_server

    world = build_world(gbp_eur=cross_border.GBP_EUR, sanctioned=(cross_border.SANCTIONED,))
    saga_id = uuid.uuid4().hex
    if stall_on == "fx_corrections":
        op, match = "create_linked", {
            "id__prefix": idempotency_key(saga_id, "convert", Phase.COMPENSATION.value)}
    elif stall_on == "recredit":
        op, match = "create_transfer", {
            "id": idempotency_key(saga_id, "debit", Phase.COMPENSATION.value)}
    else:
        raise ValueError(f"stall_on={stall_on!r}: use 'fx_corrections' or 'recredit'")
    world.ledger.faults.stall_limit_s = timeout_s
    world.ledger.faults.inject(op, FaultKind.STALL, applied=applied, match=match)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with start_server(world.ledger, world.venue) as server:
        args = ["--db", db_url, "--sim", server.url, "--saga-id", saga_id]
        agent = subprocess.Popen(
            [sys.executable, "-m", MODULE, "agent", *args], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            if not world.ledger.faults.stalled.wait(timeout_s):
                agent.kill()
                _, err = agent.communicate()
                raise RuntimeError(f"the agent never reached the stalled call: {err.decode()}")
            agent.send_signal(signal.SIGKILL)
            agent.wait(timeout_s)
        finally:
            world.ledger.faults.release()
            if agent.poll() is None:
                agent.kill()
        recover = subprocess.run(
            [sys.executable, "-m", MODULE, "recover", *args], env=env, capture_output=True,
            timeout=timeout_s, check=False,
        )
    if recover.returncode != 0:
        raise RuntimeError(f"recovery failed ({recover.returncode}): {recover.stderr.decode()}")
    line = recover.stdout.decode().strip().splitlines()[-1]
    return CrashOutcome(saga_id, agent.returncode, json.loads(line), world)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry of the two child processes."""
    parser = argparse.ArgumentParser(prog=MODULE)
    parser.add_argument("role", choices=["agent", "recover"])
    parser.add_argument("--db", required=True)
    parser.add_argument("--sim", required=True)
    parser.add_argument("--saga-id", required=True)
    parser.add_argument("--patience", type=float, default=30.0)
    args = parser.parse_args(argv)
    if args.role == "agent":
        return _agent(args.db, args.sim, args.saga_id)
    return _recover(args.db, args.sim, args.saga_id, args.patience)


if __name__ == "__main__":
    raise SystemExit(main())
