"""The default demo: AG-166 scenario B on the embedded SQLite store."""

from __future__ import annotations

from rich.console import Console

from ..core.engine import Engine
from ..core.states import SagaStatus
from ..core.store import Store
from . import onboarding
from .narrate import tell
from .outcome import DemoRun

__all__ = ["run_onboarding"]


def run_onboarding(db_url: str, console: Console) -> DemoRun:
    """AG-166 scenario B: onboarding fails at market data; reverse-dependency rollback."""
    world = onboarding.OnboardingWorld(vendor_up=False)
    store = Store.open(db_url)
    engine = Engine(onboarding.registry(), store, services={"onboarding": world})
    console.print("[bold]Client onboarding[/]: create client -> open account (GBP 250,000) -> "
                  "configure screening, send welcome e-mail -> activate market data")
    console.print("injected failure: the market-data vendor's API is down (HTTP 503), "
                  "3 attempts\n")
    try:
        result = engine.run(onboarding.saga(), {"client_id": "C-1042", "name": "Acme Ltd"})
        verified = tell(engine, result, console)
        console.print(f"\nCRM clients now: {sorted(world.clients)}; open accounts: "
                      f"{[k for k, v in world.accounts.items() if v['open']]}; e-mails: "
                      f"{[m['kind'] for m in world.outbox]}")
    finally:
        engine.close()
        store.close()
    ok = result.status is SagaStatus.COMPENSATED and verified
    return DemoRun.of(ok, result.saga_id)
