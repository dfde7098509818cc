"""One EVM network as the adapter sees it: a node, its policies and its private route."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .policy import ConfirmationPolicy, Confirmations, FeePolicy, PrivateEndpoint, SubmissionPolicy

__all__ = ["EvmNetwork"]


@dataclass
class EvmNetwork:
    """A node connection plus everything that differs between networks.

    Attributes:
        name: Network name for reports (``"mainnet"``, ``"anvil"``...).
        w3: A connected ``web3.Web3``.
        confirmation: When a transaction counts as done.
        fees: Fee and replacement policy.
        submission: Which transactions go through the private endpoint.
        private: The network's private endpoint, if it has one.
        poll_interval_s: Pause between receipt polls (on the engine's clock).
        confirm_timeout_s: How long to wait for a transaction to reach the
            confirmation policy before its step is declared in doubt.
        on_poll: Called before each pause while waiting. Simulators pass their
            block producer here so waiting advances the chain; leave None on
            real networks.
        gas_defaults: Gas limits assumed in cost estimates when
            ``eth_estimateGas`` cannot run yet (e.g. a swap needing an
            allowance that the compensation itself will grant).
    """

    name: str
    w3: Any
    confirmation: ConfirmationPolicy = field(default_factory=Confirmations)
    fees: FeePolicy = field(default_factory=FeePolicy)
    submission: SubmissionPolicy = field(default_factory=SubmissionPolicy)
    private: PrivateEndpoint | None = None
    poll_interval_s: float = 0.5
    confirm_timeout_s: float = 120.0
    on_poll: Callable[[], None] | None = None
    gas_defaults: dict[str, int] = field(
        default_factory=lambda: {
            "approve": 60_000,
            "revoke": 60_000,
            "swap": 160_000,
            "reverse_swap": 160_000,
            "deposit": 120_000,
            "withdraw": 120_000,
            "cancel": 21_000,
        }
    )

    def describe(self) -> dict[str, Any]:
        """JSON summary for dry-run details and reports (no URLs with credentials)."""
        return {
            "network": self.name,
            "confirmation": self.confirmation.describe(),
            "private_endpoint": repr(self.private) if self.private else None,
            "rollback_private": self.submission.rollback_private,
            "public_fallback": sorted(self.submission.public_fallback),
        }
