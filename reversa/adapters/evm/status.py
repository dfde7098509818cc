"""Where a journaled transaction stands on the chain right now.

Evaluated from scratch on every call, never remembered: a receipt seen a
moment ago may belong to a block that a reorg has since replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .errors import translate
from .journal import TxRecord
from .policy import ConfirmationPolicy, Confirmations

__all__ = ["TxState", "TxStatus", "evaluate"]


class TxState(StrEnum):
    """The states a sent transaction can be in."""

    CONFIRMED = "confirmed"
    """Mined, succeeded, and deep enough for the confirmation policy."""
    MINED = "mined"
    """In a canonical block, not yet deep enough (or reverted, not yet deep enough)."""
    REVERTED = "reverted"
    """Mined with status 0 and confirmed: it took its gas and did nothing else."""
    PENDING = "pending"
    """Known to the node, not in a block."""
    DROPPED = "dropped"
    """Unknown to the node and its nonce still free: it can be resent or replaced."""
    REPLACED = "replaced"
    """Its nonce was consumed by another transaction: it can never be mined."""


@dataclass(frozen=True, slots=True)
class TxStatus:
    """One evaluation of a transaction.

    Attributes:
        state: See :class:`TxState`.
        block: Block number when mined.
        block_hash: Hash of that block.
        confirmations: Blocks on top of it, itself included (0 when not mined).
        receipt: The receipt when mined.
    """

    state: TxState
    block: int | None = None
    block_hash: str | None = None
    confirmations: int = 0
    receipt: Any = None

    @property
    def in_block(self) -> bool:
        """Whether the transaction sits in a canonical block."""
        return self.state in (TxState.CONFIRMED, TxState.MINED, TxState.REVERTED)


def _hex(value: Any) -> str:
    return value if isinstance(value, str) else "0x" + bytes(value).hex()


def evaluate(w3: Any, record: TxRecord, policy: ConfirmationPolicy) -> TxStatus:
    """Evaluate ``record`` against the chain and the confirmation policy.

    Raises:
        TransientError: The node could not be asked.
    """
    from web3.exceptions import TransactionNotFound

    try:
        try:
            receipt = w3.eth.get_transaction_receipt(record.hash)
        except TransactionNotFound:
            receipt = None
        if receipt is not None and receipt["blockNumber"] is not None:
            number = int(receipt["blockNumber"])
            block = w3.eth.get_block(number)
            # A receipt from a block that is no longer canonical is stale (reorg).
            if _hex(block["hash"]) == _hex(receipt["blockHash"]):
                return _mined(w3, receipt, number, policy)
        try:
            tx = w3.eth.get_transaction(record.hash)
        except TransactionNotFound:
            tx = None
        if tx is not None and tx.get("blockNumber") is None:
            return TxStatus(TxState.PENDING)
        used = int(w3.eth.get_transaction_count(record.sender, "latest"))
    except Exception as exc:
        raise translate(exc, f"status of {record.hash}", sent=False) from None
    return TxStatus(TxState.REPLACED if used > record.nonce else TxState.DROPPED)


def _mined(w3: Any, receipt: Any, number: int, policy: ConfirmationPolicy) -> TxStatus:
    head = int(w3.eth.block_number)
    confirmations = head - number + 1
    if isinstance(policy, Confirmations):
        final = confirmations >= policy.blocks
    else:
        final = int(w3.eth.get_block(policy.tag)["number"]) >= number
    ok = int(receipt["status"]) == 1
    state = TxState.MINED if not final else (TxState.CONFIRMED if ok else TxState.REVERTED)
    return TxStatus(state, number, _hex(receipt["blockHash"]), confirmations, receipt)
