"""Where a journaled transaction stands on the chain right now.

Evaluated from scratch on every call, never remembered: a receipt seen a
moment ago may belong to a block that a reorg has since replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reversa.core.errors import TransientError

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


_ATTEMPTS = 5
"""Evaluations tried before giving up because the chain kept moving under them."""


def evaluate(w3: Any, record: TxRecord, policy: ConfirmationPolicy) -> TxStatus:
    """Evaluate ``record`` against the chain and the confirmation policy.

    The node answers each question (receipt, transaction, nonce count) at a
    different moment, and blocks keep landing in between. A transaction mined
    right after its receipt was looked up would otherwise be found "not
    pending" with its nonce used, and reported replaced by its own block: a
    final, wrong verdict. So the verdicts that rest on the transaction's
    absence (replaced, dropped) are only given when the sender's nonce count
    did not change across the lookups, and a transaction found in a block the
    receipt lookup missed is evaluated again.

    Raises:
        TransientError: The node could not be asked, or the chain moved under
            every attempt (code ``chain_moving``).
    """
    for _ in range(_ATTEMPTS):
        try:
            status = _evaluate_once(w3, record, policy)
        except Exception as exc:
            raise translate(exc, f"status of {record.hash}", sent=False) from None
        if status is not None:
            return status
    raise TransientError(
        f"status of {record.hash}: the chain moved during each of {_ATTEMPTS} evaluations",
        code="chain_moving",
    )


def _evaluate_once(w3: Any, record: TxRecord, policy: ConfirmationPolicy) -> TxStatus | None:
    """One evaluation, or None when a block landed under it."""
    from web3.exceptions import TransactionNotFound

    used_before = int(w3.eth.get_transaction_count(record.sender, "latest"))
    try:
        receipt = w3.eth.get_transaction_receipt(record.hash)
    except TransactionNotFound:
        receipt = None
    if receipt is not None and receipt["blockNumber"] is not None:
        number = int(receipt["blockNumber"])
        # A receipt from a block that is no longer canonical is stale (reorg).
        if _canonical(w3, number, receipt["blockHash"]):
            return _mined(w3, receipt, number, policy)
    try:
        tx = w3.eth.get_transaction(record.hash)
    except TransactionNotFound:
        tx = None
    if tx is not None:
        if tx.get("blockNumber") is None:
            return TxStatus(TxState.PENDING)
        if _canonical(w3, int(tx["blockNumber"]), tx["blockHash"]):
            return None  # mined after its receipt was looked up
    used = int(w3.eth.get_transaction_count(record.sender, "latest"))
    if used != used_before:
        return None  # one of the sender's transactions was mined meanwhile
    return TxStatus(TxState.REPLACED if used > record.nonce else TxState.DROPPED)


def _canonical(w3: Any, number: int, block_hash: Any) -> bool:
    return _hex(w3.eth.get_block(number)["hash"]) == _hex(block_hash)


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
