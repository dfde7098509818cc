"""AG-384 scenario C on an in-process chain, wired by hand.

approve A (max) on the router -> swap A->B on pool 1 -> swap B->C on pool 2
(too thin: fails) -> deposit C in the vault. The rollback reverses the A->B
swap through a private relay, within 1% of the forward rate, then revokes the
approval; the predicate checks every granted allowance is zero and balances
are within tolerance.

Run: python examples/evm/scenario_c.py   (record in a temp dir, or $REVERSA_DB)
"""

from __future__ import annotations

import os
import tempfile

from reversa import Engine, Registry, SagaStatus, Store, SystemClock
from reversa.adapters.evm import (
    Confirmations,
    EvmNetwork,
    EvmWallet,
    LocalSigner,
    PrivateEndpoint,
    SubmissionPolicy,
    register_evm,
)
from reversa.demos.evm.scenarios import scenario_c
from reversa.simulators.evm import (
    UNIT,
    InProcessChain,
    InProcessInclusion,
    PrivateRelay,
    deploy_defi_world,
)


def main() -> int:
    # Everything the example writes (record, transaction journal) goes in a folder
    # removed on exit, also on error; set REVERSA_DB to keep the record.
    with tempfile.TemporaryDirectory(prefix="reversa-evm-") as workdir:
        return run(workdir)


def run(workdir: str) -> int:
    """Run scenario C, writing its files under ``workdir``."""
    db_url = os.environ.get("REVERSA_DB", f"sqlite:///{workdir}/reversa.db")

    # The simulated chain: Vyper tokens, pools, router and vault.
    chain = InProcessChain(auto_mine=True)
    world = deploy_defi_world(chain)  # pool 2 is thin by default
    chain.set_auto_mine(False)  # blocks come as the wallet waits (chain.tick)

    # The agent's key lives in the signer only; it goes to the engine as a service.
    signer = LocalSigner.generate()
    chain.fund(signer.address, 10 * UNIT)
    world.mint("TKA", signer.address, 10_000 * UNIT)

    with PrivateRelay(InProcessInclusion(chain)) as relay:
        network = EvmNetwork(
            "inprocess", chain.w3,
            confirmation=Confirmations(2),
            private=PrivateEndpoint(relay.url),  # rollbacks go here, never public for swaps
            submission=SubmissionPolicy(),
            poll_interval_s=0.01, confirm_timeout_s=5, on_poll=chain.tick,
        )
        # No journal to configure: transactions are journaled in the saga store.
        wallet = EvmWallet(network, signer)
        registry = Registry()
        handlers = register_evm(registry)
        addresses = {name: world.address(name)
                     for name in ("TKA", "TKB", "TKC", "pool1", "pool2", "router", "vault")}
        saga, data = scenario_c(registry, handlers, addresses, amount_a=10_000 * UNIT,
                                max_loss_bps=100)

        store = Store.open(db_url)
        engine = Engine(registry, store, clock=SystemClock(), services={"evm": wallet})
        result = engine.run(saga, data)
        engine.close()
        store.close()

    record = result.rollback or {}
    print(f"saga {result.saga_id}: {result.status} (failed step {result.failed_step})")
    print(f"  why: {result.error}")
    for comp in record.get("compensations", []):
        res = comp.get("result", {})
        if "received" in res:
            print(f"  {comp['step']}: reverse swap via {res['route']}: {res['sold'] / UNIT:,.2f} B"
                  f" -> {res['received'] / UNIT:,.2f} A (min {res['min_out'] / UNIT:,.2f}, "
                  f"loss {res['loss_bps']} bps)")
        elif "revoke" in res:
            print(f"  {comp['step']}: approval revoked in tx {res['revoke']['tx']}")
    print(f"  predicate: {record.get('predicate', {}).get('reason')}")
    allowance = world.allowance("TKA", signer.address, world.address("router"))
    print(f"  router allowance now: {allowance}")
    kept = "REVERSA_DB" in os.environ
    print(f"  record: {db_url}" + ("" if kept else " (removed on exit; set REVERSA_DB to keep it)"))
    return 0 if result.status is SagaStatus.COMPENSATED else 1


if __name__ == "__main__":
    raise SystemExit(main())
