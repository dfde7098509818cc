"""``reversa demo`` scenarios for the EVM adapter, on the in-process chain (fast).

Each builds an in-process chain with the Vyper DeFi contracts and a private
relay, runs a real saga through the engine against the given store, and tells
the story from the durable record.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from reversa.core.clock import SystemClock
from reversa.core.engine import Engine
from reversa.core.model import Saga
from reversa.core.states import SagaStatus
from reversa.core.store import Store
from reversa.demos.narrate import tell
from reversa.demos.outcome import Demo, DemoRun

from .scenarios import APP

__all__ = ["DEMOS", "SERVICES", "services"]

SERVICES = "reversa.demos.evm.demos:services"
"""Import path of :func:`services`, recorded with every demo saga next to its ``app``."""


def services() -> dict[str, Any]:
    """The wallet of a fresh in-process chain, for reviewing a demo's sagas later.

    The demo's chain lived in its process; a reviewer's retry or dry-run from
    the CLI (which imports this through the saga's recorded ``services``) runs
    against a new chain with a newly funded agent.
    """
    rig: Any = _build()
    return dict(rig.services())


def _scenario(rig: Any) -> tuple[Saga, dict[str, Any]]:
    saga, data = rig.scenario_c(app=APP, services=SERVICES)
    return saga, data



def _engine(rig: Any, db_url: str) -> Engine:
    return Engine(rig.registry, Store.open(db_url), clock=SystemClock(),
                  services=rig.services(), heartbeat=False)


def _tokens(x: int) -> str:
    return f"{x / 10**18:,.2f}"


def _holdings(console: Console, rig: Any, label: str) -> None:
    h = rig.holdings()
    granted = {k: v for k, v in h.items() if "->" in k and v}
    console.print(f"{label}: A {_tokens(h['TKA'])}  B {_tokens(h['TKB'])}  C {_tokens(h['TKC'])}"
                  f"  vault shares {_tokens(h['shares'])}  standing allowances "
                  f"{granted or 'none'}")


def _build(**options: Any) -> Any:
    from .rig import inprocess_rig

    options.setdefault("poll_interval_s", 0.01)
    return inprocess_rig(**options)


def scenario_c(db_url: str, console: Console) -> DemoRun:
    """AG-384 scenario C: pool 2 too thin; private reverse swap within bound, approval revoked."""
    rig = _build()
    try:
        console.print("[bold]AG-384 scenario C[/]: approve A (max) on the router, swap A→B on "
                      "pool 1, swap B→C on pool 2 (thin), deposit C in the vault")
        _holdings(console, rig, "before")
        engine = _engine(rig, db_url)
        saga, data = _scenario(rig)
        result = engine.run(saga, data)
        comps = {c["step"]: c.get("result", {}) for c in (result.rollback or {}).get(
            "compensations", [])}
        reverse = comps.get("swap_ab", {})
        if reverse:
            console.print(f"reverse swap B→A via the [bold]{reverse.get('route')}[/] relay: sold "
                          f"{_tokens(reverse['sold'])} B for {_tokens(reverse['received'])} A "
                          f"(minimum {_tokens(reverse['min_out'])}, loss {reverse['loss_bps']} "
                          f"bps, gas {reverse['gas_used']})")
        _holdings(console, rig, "after")
        ok = tell(engine, result, console)
        engine.close()
        return DemoRun.of(ok and result.status is SagaStatus.COMPENSATED, result.saga_id)
    finally:
        rig.close()


def market_moved(db_url: str, console: Console) -> DemoRun:
    """Scenario C after a whale moved pool 1: escalates instead of trading at any price."""
    from reversa.simulators.evm import UNIT

    rig = _build()
    try:
        rig.whale_after_first_swap(50_000 * UNIT)
        console.print("[bold]Scenario C, market moved[/]: a whale dumps B into pool 1 right "
                      "after the agent's swap; reversing now would lose ~10%, the bound is 1%")
        engine = _engine(rig, db_url)
        saga, data = _scenario(rig)
        result = engine.run(saga, data)
        record = result.rollback or {}
        for finding in record.get("dry_run", {}).get("steps", []):
            cost = finding.get("cost") or {}
            if cost and not cost.get("acceptable", True):
                console.print(f"dry-run: [red]{cost['reason']}[/]")
        safe = record.get("safe_state") or {}
        revoked = (safe.get("result") or {}).get("revoked", [])
        console.print(f"safe state: revoked {len(revoked)} standing approval(s) before "
                      "handing over; the B position is left for a human")
        _holdings(console, rig, "after")
        ok = tell(engine, result, console)
        engine.close()
        return DemoRun.of(ok and result.status is SagaStatus.ESCALATED, result.saga_id)
    finally:
        rig.close()


def pending_replacement(db_url: str, console: Console) -> DemoRun:
    """A stuck pending approval is blocked by a same-nonce replacement, not reversed."""
    from reversa.adapters.evm import TxState, saga_transactions

    rig = _build(confirm_timeout_s=0.3)
    try:
        rig.chain.pause()
        rig.chain.on_block(lambda chain, number: chain.resume())
        console.print("[bold]Pending transaction[/]: the network stalls; the approval never "
                      "confirms, so its step is in doubt")
        engine = _engine(rig, db_url)
        saga, data = _scenario(rig)
        result = engine.run(saga, data)
        # The block found the approval pending in the saga store's journal and
        # replaced it at the same nonce; the journal holds both transactions.
        txs = saga_transactions(engine.store, result.saga_id)
        cancels = [tx for tx in txs if tx.kind == "cancel"]
        for cancel in cancels:
            replaced = next(tx for tx in txs if tx.hash == cancel.replaces)
            console.print(f"blocked {cancel.replaces} ({replaced.kind}) with same-nonce "
                          f"replacement {cancel.hash} (nonce {cancel.nonce}, via "
                          f"{cancel.route}): original "
                          f"{rig.wallet.status(replaced).state.value}")
        stood = any(rig.wallet.status(tx).state is TxState.CONFIRMED for tx in txs
                    if tx.kind == "approve")
        _holdings(console, rig, "after")
        ok = tell(engine, result, console)
        engine.close()
        return DemoRun.of(ok and bool(cancels) and not stood
                          and result.status is SagaStatus.COMPENSATED, result.saga_id)
    finally:
        rig.close()


def reorg(db_url: str, console: Console) -> DemoRun:
    """A reorg drops the swap's mined transaction: back in doubt, re-evaluated, resent."""
    from reversa.simulators.evm import UNIT

    rig = _build(pool2_liquidity=1_000_000 * UNIT, confirmations=3)
    try:
        dropped: list[str] = []
        router = rig.world.address("router").lower()
        mined_at: list[int] = []

        def reorg_swap(chain: Any, number: int) -> None:
            # Watch the chain, as another block producer would: the agent's first
            # router transaction is the A->B swap.
            if dropped:
                return
            if not mined_at:
                block = chain.w3.eth.get_block(number, full_transactions=True)
                if any(str(tx["from"]).lower() == rig.agent.lower()
                       and str(tx["to"]).lower() == router for tx in block["transactions"]):
                    mined_at.append(number)
                return
            if number - mined_at[0] + 1 == 2:  # two confirmations of the three required
                dropped.extend(chain.reorg(2))
                console.print(f"[yellow]reorg[/]: block {mined_at[0]} replaced; the swap is "
                              "no longer on chain")

        rig.chain.on_block(reorg_swap)
        console.print("[bold]Reorg[/]: confirmation policy 3 blocks; the swap's block is "
                      "reorged away after 2")
        engine = _engine(rig, db_url)
        saga, data = _scenario(rig)
        result = engine.run(saga, data)
        swap = next(t for t in result.results.get("swap_ab", {}).get("txs", [])
                    if t["kind"] == "swap")
        console.print(f"swap tx {swap['tx']}: reorgs {swap['reorgs']}, resent {swap['resent']}, "
                      f"final block {swap['block']}")
        _holdings(console, rig, "after")
        ok = tell(engine, result, console)
        engine.close()
        return DemoRun.of(ok and result.status is SagaStatus.COMPLETED and bool(dropped),
                          result.saga_id)
    finally:
        rig.close()


DEMOS: dict[str, Demo] = {
    "evm-scenario-c": scenario_c,
    "evm-market-moved": market_moved,
    "evm-pending-replacement": pending_replacement,
    "evm-reorg": reorg,
}
