"""What the payments operations declare they touch, and how they tell drift.

Resources (kind :data:`ACCOUNT`, ``ledger.account``): a transfer *consumes*
the account it debits and *produces* into the one it credits; a conversion
consumes its ``from_account`` and produces into its ``to_account``; a payment
consumes its debit account. House accounts a conversion passes through (FX
liquidity, FX P&L) are not declared: every conversion touches them, so they
would link and hold every saga to every other; the venue's inventory is the
bank's own risk, not a dependency between customers' workflows.

Reconciliation reads the ledger only, by key (the ledger never deletes or
edits, so the record of every correction is there to read):

- an effect *stands* when the transfer exists, is not voided or expired, and
  nothing corrects it;
- an effect is *still undone* when everything posted is corrected and no
  correction has itself been corrected (someone booking the money back
  outside Reversa).
"""

from __future__ import annotations

from reversa.core.context import Check, Fence
from reversa.core.resources import Resource, Role

from .ledger_api import LedgerAPI, PendingState, TransferKind
from .money import format_money

__all__ = ["ACCOUNT", "account", "stands", "still_undone"]

ACCOUNT = "ledger.account"
"""Resource kind of a ledger account (its id is the account id)."""


def account(account_id: object, role: Role) -> Resource:
    """The ledger account ``account_id`` used in ``role``."""
    return Resource(ACCOUNT, str(account_id), role)


def stands(ledger: LedgerAPI, transfer_id: str, fence: Fence) -> Check:
    """The transfer exists and nothing outside the saga undid it."""
    original = ledger.get_transfer(transfer_id, fence=fence)
    if original is None:
        return Check(False, f"transfer {transfer_id} is not on the ledger")
    if original.kind == TransferKind.PENDING and original.state in (
            PendingState.VOIDED, PendingState.EXPIRED):
        return Check(False, f"hold {transfer_id} is {original.state} (it was recorded in effect)")
    corrections = ledger.find_transfers(corrects=transfer_id, fence=fence)
    if corrections:
        return Check(False, f"transfer {transfer_id} was corrected outside the saga by "
                            f"{', '.join(c.id for c in corrections)}",
                     {"corrections": [c.id for c in corrections]})
    return Check(True, f"transfer {transfer_id} stands")


def still_undone(ledger: LedgerAPI, transfer_id: str, fence: Fence) -> Check:
    """Whatever of the transfer was posted is corrected, and no correction was undone."""
    original = ledger.get_transfer(transfer_id, fence=fence)
    if original is None:
        return Check(True, f"transfer {transfer_id} was never booked")
    posted = original.amount
    if original.kind == TransferKind.PENDING:
        if original.state != PendingState.POSTED:
            return Check(original.state != PendingState.PENDING,
                         f"hold {transfer_id} is {original.state}")
        posted = sum(t.amount for t in ledger.find_transfers(pending_id=transfer_id, fence=fence)
                     if t.kind == TransferKind.POST)
    corrections = ledger.find_transfers(corrects=transfer_id, fence=fence)
    for c in corrections:
        undone = ledger.find_transfers(corrects=c.id, fence=fence)
        if undone:
            return Check(False, f"correction {c.id} of {transfer_id} was itself corrected "
                                f"outside Reversa by {', '.join(u.id for u in undone)}: the "
                                "money is back where the saga took it from",
                         {"correction": c.id, "undone_by": [u.id for u in undone]})
    corrected = sum(c.amount for c in corrections)
    if corrected < posted:
        return Check(False, f"transfer {transfer_id} is corrected by "
                            f"{format_money(corrected, original.currency)} of "
                            f"{format_money(posted, original.currency)} only")
    return Check(True, f"transfer {transfer_id} is fully corrected")
