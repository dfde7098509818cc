"""``reversa demo payments-*``: the payments acceptance stories, narrated.

Each demo runs a real saga on the given store against the simulated bank, then
tells what failed, how the rollback went (dry-run findings, FX cost estimated
and realized, ledger corrections), the predicate's verdict, the audit chain's
verification and where the record lives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from reversa.adapters.payments.money import format_money
from reversa.core.context import key_prefix
from reversa.core.engine import Engine
from reversa.core.states import SagaStatus
from reversa.core.store import Store
from reversa.core.views import SagaResult
from reversa.demos.narrate import tell
from reversa.demos.outcome import Demo, DemoRun
from reversa.simulators.ledger import FaultKind

from . import APP, SERVICES, PaymentsWorld, build_world, mt103, procurement, registry
from .crash import run_crash_story

__all__ = ["DEMOS"]


def _balances(console: Console, world: PaymentsWorld, before: Mapping[str, Any],
              accounts: list[str]) -> None:
    table = Table(title="ledger balances (posted / pending)")
    for col in ("account", "before", "after"):
        table.add_column(col)
    after = world.balances()
    for acct in accounts:
        ccy = world.ledger.get_account(acct).currency
        b, a = before.get(acct, {"posted": 0, "pending": 0}), after[acct]
        table.add_row(acct, f"{format_money(b['posted'], ccy)} / {b['pending'] / 100:,.2f}",
                      f"{format_money(a['posted'], ccy)} / {a['pending'] / 100:,.2f}")
    console.print(table)


def _fx_story(console: Console, result: SagaResult) -> None:
    convert = result.results.get("convert") or {}
    at_exec = convert.get("reversal_estimate_at_execution") or {}
    console.print(f"FX: {convert.get('display')} at {convert.get('rate')} (rate captured); "
                  f"reversal cost if undone at once: {at_exec.get('cost')} "
                  f"{at_exec.get('currency')} ({at_exec.get('cost_bps')} bps)")
    record = result.rollback or {}
    for finding in (record.get("dry_run") or {}).get("steps", []):
        cost = finding.get("cost") or {}
        detail = cost.get("detail") or {}
        if finding["step"] == "convert" and cost:
            console.print(
                f"  dry-run estimate before reversing: {cost.get('amount')} {cost.get('unit')} "
                f"= entry cost {detail.get('entry_cost')} + rate move {detail.get('rate_move')}"
                f" + spread {detail.get('spread')} + "
                f"slippage {detail.get('slippage')} ({detail.get('levels')} levels, VWAP "
                f"{detail.get('vwap', 0):.6f}) + fees {detail.get('fees')}; "
                f"{cost.get('reason')}")
    for comp in record.get("compensations", []):
        res = comp.get("result") or {}
        if comp["step"] == "convert" and "realized_cost" in res:
            console.print(f"  realized after reversing: {res['realized_cost']} "
                          f"{res['currency']} ({res['realized_cost_bps']} bps), booked to FX P&L")


def _corrections(console: Console, world: PaymentsWorld, saga_id: str) -> None:
    table = Table(title="ledger entries of this saga (never edited, never deleted)")
    for col in ("transfer", "kind", "code", "amount", "corrects / resolves"):
        table.add_column(col)
    prefix = key_prefix(saga_id)
    for t in world.ledger.find_transfers(prefix=prefix):
        short = t.id.removeprefix(prefix)
        ref = (t.corrects or t.pending_id or "").removeprefix(prefix)
        kind = t.kind if t.state is None else f"{t.kind} ({t.state})"
        table.add_row(short, kind, t.code, format_money(t.amount, t.currency), ref)
    console.print(table)


def _engine(world: PaymentsWorld, db_url: str) -> tuple[Engine, Store]:
    store = Store.open(db_url)
    return Engine(registry(), store, clock=world.clock, services=world.services()), store


def demo_ag166a(db_url: str, console: Console) -> DemoRun:
    """AG-166 A: procurement, payment gateway times out twice; logistics webhook cancelled."""
    world = build_world()
    world.ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, times=2, latency_s=30.0)
    engine, store = _engine(world, db_url)
    before = world.balances()
    console.print("[bold]Procurement[/]: reserve 500 x WIDGET-500 -> create PO -> logistics "
                  "pre-step webhook + pay GBP 47,500 (card gateway) -> confirm shipment")
    console.print("injected failure: the payment gateway times out after 30 s, twice\n")
    try:
        saga = procurement.saga(engine.registry, app=APP, services=SERVICES)
        result = engine.run(saga, procurement.INPUT)
        verified = tell(engine, result, console)
        parties = world.counterparties
        console.print(f"stock now: {parties.stock}; POs: "
                      f"{ {n: o['status'] for n, o in parties.orders.items()} }")
        console.print(f"logistics webhooks: {[w['event'] for w in parties.webhooks]}")
        _balances(console, world, before, ["ops:GBP"])
    finally:
        engine.close()
        store.close()
    return DemoRun.of(result.status is SagaStatus.COMPENSATED and verified, result.saga_id)


def demo_ag166c(db_url: str, console: Console) -> DemoRun:
    """AG-166 C: sanctions rejection; the agent is SIGKILLed mid-compensation, a worker finishes."""
    console.print("[bold]Cross-border payment[/]: debit GBP 100,000 -> convert to EUR -> credit "
                  "the partner bank (TARGET2)")
    console.print("the partner bank rejects on sanctions screening; the agent process is "
                  "killed with SIGKILL while booking the FX corrections; a second process "
                  "recovers the saga from the durable record\n")
    outcome = run_crash_story(db_url, stall_on="fx_corrections")
    console.print(f"agent exit code {outcome.agent_returncode} (killed); recovery process: "
                  f"{outcome.recover_output['status']}")
    world = outcome.world
    engine, store = _engine(world, db_url)
    try:
        view = engine.inspect(outcome.saga_id)
        result = SagaResult(saga_id=view.id, status=view.status, results={
            s.name: s.result for s in view.steps if s.result is not None},
            rollback=view.rollbacks[-1].record if view.rollbacks else None)
        verified = tell(engine, result, console)
        _fx_story(console, result)
        _corrections(console, world, outcome.saga_id)
        console.print(f"venue orders: {len(world.venue.orders)} (the conversion and exactly one "
                      "reversal, although two processes ran the compensation)")
        _balances(console, world, {"cust:bob": {"posted": 50_000_000, "pending": 0}},
                  ["cust:bob", "hold:GBP", "hold:EUR", "fx:GBP", "fx_pnl:GBP"])
    finally:
        engine.close()
        store.close()
    return DemoRun.of(view.status is SagaStatus.COMPENSATED and verified, outcome.saga_id)


def demo_ag384a(db_url: str, console: Console) -> DemoRun:
    """AG-384 A: MT103 times out (but went through); cancel, correct, reverse FX at a known cost."""
    world = build_world(gbp_eur=mt103.GBP_EUR, drift_bps_per_hour=-15.0)
    world.ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, applied=True, times=2,
                               latency_s=30.0)
    engine, store = _engine(world, db_url)
    before = world.balances()
    console.print("[bold]Cross-border payment[/]: hold GBP 142,000 -> convert -> credit nostro "
                  "EUR -> submit MT103 -> update ledger -> confirm")
    console.print("injected failure: the SWIFT gateway times out (30 s) on both attempts; the "
                  "first one did reach the correspondent\n")
    try:
        result = engine.run(mt103.saga(engine.registry, app=APP, services=SERVICES), mt103.INPUT)
        verified = tell(engine, result, console)
        _fx_story(console, result)
        _corrections(console, world, result.saga_id)
        _balances(console, world, before, ["cust:alice", "hold:GBP", "hold:EUR", "nostro:EUR",
                                           "fx:GBP", "fx:EUR", "fx_pnl:GBP"])
    finally:
        engine.close()
        store.close()
    return DemoRun.of(result.status is SagaStatus.COMPENSATED and verified, result.saga_id)


DEMOS: dict[str, Demo] = {
    "payments-ag166a": demo_ag166a,
    "payments-ag166c": demo_ag166c,
    "payments-ag384a": demo_ag384a,
}
