"""A ready wiring of chain, contracts, relay and wallet, for demos, examples and tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reversa.adapters.evm import (
    Confirmations,
    EvmHandlers,
    EvmNetwork,
    EvmWallet,
    LocalSigner,
    PrivateEndpoint,
    SubmissionPolicy,
    register_evm,
)
from reversa.core.model import Saga
from reversa.core.registry import Registry
from reversa.simulators.evm import (
    UNIT,
    DefiWorld,
    InProcessChain,
    InProcessInclusion,
    PrivateRelay,
    deploy_defi_world,
)

from .scenarios import scenario_c

__all__ = ["ADDRESS_NAMES", "EvmRig", "inprocess_rig"]

ADDRESS_NAMES = ("TKA", "TKB", "TKC", "pool1", "pool2", "router", "vault")


@dataclass
class EvmRig:
    """Everything a scenario needs, wired together.

    Attributes:
        chain: The simulator (in-process chain or anvil node).
        world: Deployed contracts.
        signer: The agent's key holder.
        wallet: The adapter's wallet (goes in ``Engine(services={"evm": wallet})``).
        relay: The private relay (stop it with :meth:`close`).
        registry: A registry with the EVM handlers.
        handlers: Their names.
        amount_a: Token A the agent starts with and trades.
    """

    chain: Any
    world: DefiWorld
    signer: LocalSigner
    wallet: EvmWallet
    relay: PrivateRelay | None
    registry: Registry
    handlers: EvmHandlers
    amount_a: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def addresses(self) -> dict[str, str]:
        """Token, pool, router and vault addresses by name."""
        return {name: self.world.address(name) for name in ADDRESS_NAMES}

    @property
    def agent(self) -> str:
        """The agent's address."""
        return self.signer.address

    def services(self) -> dict[str, Any]:
        """The engine's services mapping."""
        return {"evm": self.wallet}

    def scenario_c(self, **options: Any) -> tuple[Saga, dict[str, Any]]:
        """AG-384 scenario C on this rig (see :func:`reversa.demos.evm.scenarios.scenario_c`)."""
        options.setdefault("amount_a", self.amount_a)
        return scenario_c(self.registry, self.handlers, self.addresses, **options)

    def holdings(self) -> dict[str, int]:
        """The agent's balances, vault shares and router/vault allowances."""
        w, me = self.world, self.agent
        out = {sym: w.balance(sym, me) for sym in ("TKA", "TKB", "TKC")}
        out["shares"] = w.shares(me)
        for sym in ("TKA", "TKB", "TKC"):
            out[f"{sym}->router"] = w.allowance(sym, me, w.address("router"))
            out[f"{sym}->vault"] = w.allowance(sym, me, w.address("vault"))
        return out

    def whale_after_first_swap(self, amount: int) -> None:
        """Another trader dumps B into pool 1 as soon as the agent holds B (moves the market)."""

        def hook(chain: Any, number: int) -> None:
            if self.extra.get("moved") or self.world.balance("TKB", self.agent) == 0:
                return
            self.extra["moved"] = True
            chain.set_auto_mine(True)
            self.world.trade("pool1", "TKB", amount)
            chain.set_auto_mine(False)

        self.chain.on_block(hook)

    def close(self) -> None:
        """Stop the relay."""
        if self.relay is not None:
            self.relay.stop()


def inprocess_rig(
    *,
    pool2_liquidity: int = 1_000 * UNIT,
    amount_a: int = 10_000 * UNIT,
    confirmations: int = 2,
    private: bool = True,
    confirm_timeout_s: float = 5.0,
    chain: InProcessChain | None = None,
    world: DefiWorld | None = None,
    submission: SubmissionPolicy | None = None,
    poll_interval_s: float = 0.1,
) -> EvmRig:
    """An in-process chain with the DeFi world, a private relay and a funded agent.

    The chain runs without automine: blocks are produced as the wallet waits
    (its ``on_poll`` hook is the chain's :meth:`~InProcessChain.tick`), so
    block hooks and pauses are deterministic.

    Args:
        pool2_liquidity: Reserves of the B/C pool (the default is too thin
            for the scenario's swap, which is the point of scenario C).
        amount_a: Token A minted to the agent.
        confirmations: The network's confirmation policy.
        private: Start a private relay and configure it as the private endpoint.
        confirm_timeout_s: How long a transaction may take before its step is in doubt.
        chain: Reuse a chain (its world must be passed too).
        world: Reuse deployed contracts.
        submission: Submission policy (default: rollbacks private, no public
            fallback for swaps).
        poll_interval_s: Pause between receipt polls (each poll produces a block).
    """
    if chain is None:
        chain = InProcessChain(auto_mine=True)
        world = deploy_defi_world(chain, pool2_liquidity=pool2_liquidity)
    assert world is not None, "pass the world deployed on the chain you pass"
    chain.set_auto_mine(False)
    signer = LocalSigner.generate()
    chain.fund(signer.address, 10 * UNIT)
    world.mint("TKA", signer.address, amount_a)
    relay = PrivateRelay(InProcessInclusion(chain)).start() if private else None
    network = EvmNetwork(
        "inprocess", chain.w3, confirmation=Confirmations(confirmations),
        private=PrivateEndpoint(relay.url) if relay else None,
        submission=submission or SubmissionPolicy(),
        poll_interval_s=poll_interval_s, confirm_timeout_s=confirm_timeout_s, on_poll=chain.tick,
    )
    wallet = EvmWallet(network, signer)  # transactions are journaled in the saga store
    registry = Registry()
    handlers = register_evm(registry)
    return EvmRig(chain, world, signer, wallet, relay, registry, handlers, amount_a)
