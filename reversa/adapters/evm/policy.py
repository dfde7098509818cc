"""Per-network policy values: confirmation, fees, submission routes, private endpoints.

All are frozen dataclasses, so a network's policy is a value that can be
shown in a dry-run and compared in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ConfirmationPolicy",
    "Confirmations",
    "FeePolicy",
    "FinalityTag",
    "PrivateEndpoint",
    "SubmissionPolicy",
    "TxKind",
]

TxKind = Literal[
    "approve", "revoke", "swap", "reverse_swap", "deposit", "withdraw", "cancel", "transfer"
]
"""What a transaction does; submission policy is decided per kind."""

ROLLBACK_KINDS: frozenset[str] = frozenset({"revoke", "reverse_swap", "withdraw", "cancel"})


@dataclass(frozen=True, slots=True)
class Confirmations:
    """A transaction counts once its block has ``blocks`` confirmations (1 = mined).

    Right for dev chains and for chains without finality tags. On a reorg-prone
    network pick a depth beyond the reorgs you have seen, or use
    :class:`FinalityTag`.
    """

    blocks: int = 1

    def __post_init__(self) -> None:
        if self.blocks < 1:
            raise ValueError("Confirmations(blocks) must be >= 1")

    def describe(self) -> str:
        """Human-readable form."""
        return f"{self.blocks} confirmation(s)"


@dataclass(frozen=True, slots=True)
class FinalityTag:
    """A transaction counts once its block is at or below the node's ``safe``/``finalized`` tag.

    On Ethereum mainnet ``finalized`` (two epochs, ~13 minutes) cannot be
    reorged without slashing a third of the stake; ``safe`` (justified) is the
    usual trade-off for workflows.
    """

    tag: Literal["safe", "finalized"] = "finalized"

    def describe(self) -> str:
        """Human-readable form."""
        return f"block tag {self.tag!r}"


ConfirmationPolicy = Confirmations | FinalityTag


@dataclass(frozen=True, slots=True)
class FeePolicy:
    """EIP-1559 fees and the replacement rule.

    Attributes:
        priority_fee_wei: Tip offered to the block producer.
        base_fee_multiplier: ``maxFeePerGas = base fee * multiplier + tip``,
            headroom for base-fee rises while the transaction waits.
        replacement_bump_bps: How much a same-nonce replacement raises both fee
            fields over the transaction it replaces, in basis points. Geth and
            most nodes require 10% (1000); the default adds margin.
        max_fee_cap_wei: Refuse to send when the fee would exceed this (None: no cap).
        gas_margin_bps: Added on top of ``eth_estimateGas`` for the gas limit.
    """

    priority_fee_wei: int = 2 * 10**9
    base_fee_multiplier: int = 2
    replacement_bump_bps: int = 1250
    max_fee_cap_wei: int | None = None
    gas_margin_bps: int = 2000


@dataclass(frozen=True, slots=True)
class PrivateEndpoint:
    """A private transaction endpoint for one network.

    Attributes:
        url: JSON-RPC URL of the relay (e.g. a Flashbots Protect style RPC).
        method: ``eth_sendPrivateTransaction`` (relays taking ``{"tx": raw}``)
            or ``eth_sendRawTransaction`` (protect-style RPC URLs that keep raw
            submissions out of the public mempool).
        max_blocks: For ``eth_sendPrivateTransaction``: blocks the relay may
            hold the transaction before dropping it.
        timeout_s: HTTP timeout of one submission.
    """

    url: str
    method: Literal["eth_sendPrivateTransaction", "eth_sendRawTransaction"] = (
        "eth_sendPrivateTransaction"
    )
    max_blocks: int = 25
    timeout_s: float = 10.0

    def __repr__(self) -> str:
        # Relay URLs can carry an API key in the path or query: show the host only.
        from urllib.parse import urlsplit

        host = urlsplit(self.url).netloc.rsplit("@", 1)[-1] or "<unparsed>"
        return f"PrivateEndpoint(host={host!r}, method={self.method!r})"


@dataclass(frozen=True, slots=True)
class SubmissionPolicy:
    """Which route each transaction takes.

    Attributes:
        forward_private: Send forward (action) transactions privately too.
        rollback_private: Send rollback transactions through the private
            endpoint (AG-384: MEV on the reversal is a rollback cost).
        public_fallback: Rollback transaction kinds that may fall back to the
            public mempool when the private endpoint is unavailable. Reverse
            swaps are never in the default: a sandwiched reversal is the loss the
            policy exists to prevent. Revocations and cancellations carry no
            price to extract, so they may.
    """

    forward_private: bool = False
    rollback_private: bool = True
    public_fallback: frozenset[str] = field(default_factory=lambda: frozenset({"revoke", "cancel"}))

    def wants_private(self, kind: str, rollback: bool) -> bool:
        """Whether a transaction of ``kind`` goes to the private endpoint."""
        return self.rollback_private if rollback else self.forward_private

    def may_fall_back(self, kind: str) -> bool:
        """Whether a private-route failure of ``kind`` may be retried publicly."""
        return kind in self.public_fallback
