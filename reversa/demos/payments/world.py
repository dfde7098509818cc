"""The simulated bank the acceptance stories run against (in process)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from reversa.adapters.payments.ledger_api import AccountRole
from reversa.adapters.payments.money import to_minor
from reversa.core.clock import FakeClock
from reversa.simulators.counterparties import Counterparties
from reversa.simulators.fx_exchange import SimFxExchange
from reversa.simulators.fx_venue import FxMarket, FxVenue
from reversa.simulators.ledger import FaultPlan, MockLedger

__all__ = ["ACCOUNTS", "PaymentsWorld", "build_world"]

ACCOUNTS: dict[str, tuple[str, str, str]] = {
    # id: (currency, role, opening balance in major units)
    "cust:alice": ("GBP", AccountRole.CUSTOMER.value, "250000.00"),
    "cust:bob": ("GBP", AccountRole.CUSTOMER.value, "500000.00"),
    "ops:GBP": ("GBP", AccountRole.OPERATING.value, "1000000.00"),
    "hold:GBP": ("GBP", AccountRole.HOLDING.value, "0"),
    "hold:EUR": ("EUR", AccountRole.HOLDING.value, "0"),
    "nostro:EUR": ("EUR", AccountRole.NOSTRO.value, "0"),
    "fx:GBP": ("GBP", AccountRole.FX_LIQUIDITY.value, "0"),
    "fx:EUR": ("EUR", AccountRole.FX_LIQUIDITY.value, "0"),
    "fx_pnl:GBP": ("GBP", AccountRole.PNL.value, "0"),
}
"""The chart of accounts every story starts from."""


@dataclass
class PaymentsWorld:
    """Ledger, FX venue (and its ccxt client), and counterparties on one fake clock.

    Injected latency advances the clock instead of sleeping, so a "30 s gateway
    timeout" moves simulated time (and the FX rate) without real waiting.
    """

    clock: FakeClock
    ledger: MockLedger
    venue: FxVenue
    exchange: SimFxExchange
    counterparties: Counterparties

    def services(self) -> dict[str, Any]:
        """What to pass as ``Engine(services=...)``."""
        return {"ledger": self.ledger, "fx": self.exchange, "counterparties": self.counterparties}

    def balances(self) -> dict[str, dict[str, int]]:
        """Posted and pending balance of every account."""
        return self.ledger.balances()


def build_world(
    *,
    gbp_eur: float = 1.1647,
    seed: int | str = 7,
    drift_bps_per_hour: float = 0.0,
    vol_bps_per_step: float = 0.5,
    sanctioned: tuple[str, ...] = (),
    clock: FakeClock | None = None,
) -> PaymentsWorld:
    """A fresh simulated bank with :data:`ACCOUNTS` opened and funded.

    Args:
        gbp_eur: GBP/EUR mid at the start.
        seed: Seed of the venue's random walk.
        drift_bps_per_hour: Deterministic drift of the rate.
        vol_bps_per_step: Bound of each random-walk step (one per minute).
        sanctioned: Beneficiaries the ledger's screening rejects.
        clock: Shared fake clock (default: one starting now).
    """
    clock = clock or FakeClock(start=time.time())
    ledger = MockLedger(clock=clock, faults=FaultPlan(sleep=clock.advance), sanctioned=sanctioned)
    for acct, (currency, role, opening) in ACCOUNTS.items():
        ledger.open_account(acct, currency, role, balance=to_minor(opening, currency))
    market = FxMarket(
        "GBP", "EUR", gbp_eur, drift_bps_per_hour=drift_bps_per_hour,
        vol_bps_per_step=vol_bps_per_step,
    )
    venue = FxVenue([market], clock=clock, seed=seed, faults=FaultPlan(sleep=clock.advance))
    parties = Counterparties(
        stock={"WIDGET-500": {"on_hand": 2_000, "reserved": 0}},
        faults=FaultPlan(sleep=clock.advance),
    )
    return PaymentsWorld(clock, ledger, venue, SimFxExchange(venue=venue), parties)
