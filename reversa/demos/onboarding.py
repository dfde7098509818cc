"""AG-166 scenario B: client onboarding, compensated in reverse dependency order.

Four services with independent state: a CRM (clients), a core-banking system
(trading accounts, with a foreign key to the CRM client), a compliance engine
and a market-data vendor, plus a notification service whose e-mails cannot be
unsent. Activating market data fails (vendor API down). The trading account
must be closed before the client record is deleted, and the welcome e-mail is
neutralised by a correction notice (semantic compensation).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ..core.context import Check, Probe, SnapshotContext, StepContext
from ..core.errors import PermanentError, TransientError
from ..core.model import CompensationKind, Retry, Reversibility, Saga, Step
from ..core.registry import Registry

__all__ = ["OnboardingWorld", "registry", "saga", "services"]


@dataclass
class OnboardingWorld:
    """The participating systems, each deduplicating by idempotency key."""

    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: dict[str, list[str]] = field(default_factory=dict)
    subscriptions: dict[str, str] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[str, Any] = field(default_factory=dict)
    vendor_up: bool = False
    effects: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def once(self, key: str, effect: Any) -> Any:
        """Apply ``effect`` once per idempotency key; replays return the first result."""
        with self.lock:
            if key in self.seen:
                return self.seen[key]
            result = effect()
            self.seen[key] = result
            self.effects[key] = self.effects.get(key, 0) + 1
            return result

    def state(self) -> dict[str, Any]:
        """What the saga touches (for the snapshot and the predicate)."""
        return {
            "clients": sorted(self.clients), "accounts": {
                k: v["allocation"] for k, v in self.accounts.items() if v["open"]},
            "rules": {k: v for k, v in self.rules.items() if v},
            "subscriptions": dict(self.subscriptions),
        }


def _world(ctx: Any) -> OnboardingWorld:
    world = ctx.services.get("onboarding")
    if not isinstance(world, OnboardingWorld):
        raise PermanentError("services['onboarding'] must be an OnboardingWorld")
    return world


def registry() -> Registry:
    """The handlers of the onboarding workflow."""
    reg = Registry()

    @reg.action("crm.create_client")
    def create_client(ctx: StepContext) -> dict[str, Any]:
        w, cid = _world(ctx), ctx.input["client_id"]

        def effect() -> dict[str, Any]:
            w.clients[cid] = {"name": ctx.input["name"]}
            return {"client_id": cid}

        return dict(w.once(ctx.idempotency_key, effect))

    @reg.compensation("crm.delete_client")
    def delete_client(ctx: StepContext) -> dict[str, Any]:
        w, cid = _world(ctx), ctx.input["client_id"]

        def effect() -> dict[str, Any]:
            if any(a["client"] == cid and a["open"] for a in w.accounts.values()):
                # Referential integrity: the failure scenario B describes.
                raise PermanentError(f"client {cid} still owns an open account (FK violation)")
            w.clients.pop(cid, None)
            return {"deleted": cid}

        return dict(w.once(ctx.idempotency_key, effect))

    @reg.probe("crm.client_exists")
    def client_exists(ctx: StepContext) -> Probe:
        exists = ctx.input["client_id"] in _world(ctx).clients
        return Probe.HAPPENED if exists else Probe.NOT_HAPPENED

    @reg.action("bank.open_account")
    def open_account(ctx: StepContext) -> dict[str, Any]:
        w = _world(ctx)
        acct = f"ACC-{ctx.input['client_id']}"

        def effect() -> dict[str, Any]:
            w.accounts[acct] = {"client": ctx.input["client_id"], "open": True,
                                "allocation": ctx.params["allocation_gbp"]}
            return {"account": acct, "allocation_gbp": ctx.params["allocation_gbp"]}

        return dict(w.once(ctx.idempotency_key, effect))

    @reg.compensation("bank.close_account")
    def close_account(ctx: StepContext) -> dict[str, Any]:
        w = _world(ctx)
        acct = f"ACC-{ctx.input['client_id']}"

        def effect() -> dict[str, Any]:
            if acct in w.accounts:  # nothing to undo is success
                w.accounts[acct]["open"] = False
            return {"closed": acct}

        return dict(w.once(ctx.idempotency_key, effect))

    @reg.precondition("bank.account_has_no_trades")
    def no_trades(ctx: StepContext) -> Check:
        acct = _world(ctx).accounts.get(f"ACC-{ctx.input['client_id']}") or {}
        trades = int(acct.get("trades", 0))
        return Check(trades == 0, f"{trades} trades booked" if trades else "no trades booked")

    @reg.action("compliance.configure")
    def configure(ctx: StepContext) -> dict[str, Any]:
        w = _world(ctx)
        rules = ["sanctions", "pep", "adverse-media"]

        def effect() -> dict[str, Any]:
            w.rules[ctx.input["client_id"]] = rules
            return {"rules": rules}

        return dict(w.once(ctx.idempotency_key, effect))

    @reg.compensation("compliance.remove")
    def remove_rules(ctx: StepContext) -> dict[str, Any]:
        w = _world(ctx)

        def effect() -> dict[str, Any]:
            w.rules.pop(ctx.input["client_id"], None)
            return {"removed": True}

        return dict(w.once(ctx.idempotency_key, effect))

    @reg.action("notify.welcome")
    def welcome(ctx: StepContext) -> dict[str, Any]:
        return _send(ctx, "welcome")

    @reg.compensation("notify.correction")
    def correction(ctx: StepContext) -> dict[str, Any]:
        # An e-mail cannot be unsent: neutralise it instead (AG-166 4.9).
        return _send(ctx, "correction")

    @reg.action("marketdata.activate")
    def activate(ctx: StepContext) -> dict[str, Any]:
        w = _world(ctx)
        if not w.vendor_up:
            raise TransientError("market-data vendor API is down (HTTP 503)")

        def effect() -> dict[str, Any]:
            w.subscriptions[ctx.input["client_id"]] = "L2"
            return {"feed": "L2"}

        return dict(w.once(ctx.idempotency_key, effect))

    @reg.compensation("marketdata.deactivate")
    def deactivate(ctx: StepContext) -> dict[str, Any]:
        w = _world(ctx)

        def effect() -> dict[str, Any]:
            w.subscriptions.pop(ctx.input["client_id"], None)
            return {"off": True}

        return dict(w.once(ctx.idempotency_key, effect))

    @reg.snapshot("onboarding.state")
    def snapshot(ctx: SnapshotContext) -> dict[str, Any]:
        return _world(ctx).state()

    return reg


def _send(ctx: StepContext, kind: str) -> dict[str, Any]:
    w = _world(ctx)

    def effect() -> dict[str, Any]:
        w.outbox.append({"to": ctx.input["name"], "kind": kind})
        return {"sent": kind}

    return dict(w.once(ctx.idempotency_key, effect))


def services() -> dict[str, Any]:
    """Services of a fresh, empty set of systems, for reviewing the demo's sagas later.

    The demo's systems lived in its process; a reviewer's retry or dry-run from
    the CLI (which finds this through the saga's recorded ``services``) runs
    against these.
    """
    return {"onboarding": OnboardingWorld()}


def saga(backoff_s: float = 0.01) -> Saga:
    """The onboarding workflow with its full rollback semantics."""
    retry = Retry(max_attempts=3, initial_s=backoff_s, max_s=backoff_s * 4)
    return Saga(
        workflow="client-onboarding",
        app="reversa.demos.onboarding:registry",
        services="reversa.demos.onboarding:services",
        snapshot="onboarding.state",
        rollback_window_s=60,
        steps=[
            Step(name="create_client", action="crm.create_client",
                 compensation="crm.delete_client", probe="crm.client_exists"),
            Step(name="open_account", action="bank.open_account",
                 compensation="bank.close_account", depends_on=("create_client",),
                 preconditions=("bank.account_has_no_trades",),
                 params={"allocation_gbp": 250_000}),
            Step(name="configure_screening", action="compliance.configure",
                 compensation="compliance.remove", depends_on=("open_account",)),
            Step(name="send_welcome", action="notify.welcome", compensation="notify.correction",
                 compensation_kind=CompensationKind.SEMANTIC,
                 reversibility=Reversibility.PARTIAL, depends_on=("create_client",)),
            Step(name="activate_market_data", action="marketdata.activate",
                 compensation="marketdata.deactivate",
                 depends_on=("open_account", "configure_screening"), retry=retry),
        ],
    )
