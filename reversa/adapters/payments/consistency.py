"""Ledger snapshot and consistency predicate for payment workflows (AG-384 4.3).

After a rollback the predicate holds when:

1. every account in scope has the same posted **and** pending balance as in the
   pre-workflow snapshot, except accounts whose role is declared as absorbing
   (FX liquidity and FX P&L by default: where a reversal's realized cost lands,
   the declared safe state);
2. holding and nostro accounts net to zero over the workflow (posted plus
   pending);
3. per currency, the absorbing accounts' changes net to zero (the FX cost moved
   between P&L and the venue's side and nowhere else);
4. every transfer the saga booked (its ids start with the saga's key prefix,
   :func:`reversa.core.context.key_prefix`) is undone the ledger's way: holds
   voided or expired, posted amounts fully corrected by transfers that reference
   them. Nothing was deleted or edited, so this is checked from the ledger
   itself, not from the saga's own record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reversa.core.context import (
    Check,
    PredicateContext,
    SnapshotContext,
    key_prefix,
    lookup_service,
)

from .ledger_api import LedgerAPI, LedgerNotFound, PendingState, TransferKind
from .money import format_money

__all__ = ["LedgerConsistency", "LedgerSnapshot", "UNDO_CODES"]

UNDO_CODES = frozenset(
    {"correction", "fx_reversal_cost", "fx_reversal_gain", "return", "recall_return"}
)
"""Transfer codes that undo something (they are not themselves undone)."""


class LedgerSnapshot:
    """Snapshot function: balances of the accounts a workflow touches.

    Args:
        accounts: Fixed accounts (holding, nostro, FX liquidity, P&L...).
        input_accounts: Saga input keys naming more accounts (e.g. ``"sender"``).
        ledger_service: Service name of the ledger.
        key: Key of the ledger section in the snapshot dict.
    """

    def __init__(
        self,
        accounts: Sequence[str] = (),
        input_accounts: Sequence[str] = (),
        *,
        ledger_service: str = "ledger",
        key: str = "ledger",
    ) -> None:
        self.accounts = tuple(accounts)
        self.input_accounts = tuple(input_accounts)
        self.ledger_service = ledger_service
        self.key = key

    def account_ids(self, saga_input: Mapping[str, Any]) -> list[str]:
        """The accounts in scope for one saga input."""
        extra = [str(saga_input[k]) for k in self.input_accounts if k in saga_input]
        return list(dict.fromkeys([*extra, *self.accounts]))

    def capture(self, ledger: LedgerAPI, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{account: {posted, pending, role, currency}}``; absent accounts read as zero."""
        out: dict[str, dict[str, Any]] = {}
        for acct in ids:
            try:
                a = ledger.get_account(acct)
            except LedgerNotFound:
                out[acct] = {"posted": 0, "pending": 0, "role": "absent", "currency": None}
                continue
            out[acct] = {"posted": a.posted, "pending": a.pending, "role": a.role,
                         "currency": a.currency}
        return out

    def __call__(self, ctx: SnapshotContext) -> dict[str, Any]:
        """The snapshot the engine stores before step 1 and after rollback."""
        ledger = lookup_service(ctx.services, self.ledger_service, LedgerAPI,
                                where=f"snapshot of {ctx.workflow!r}")
        return {self.key: self.capture(ledger, self.account_ids(ctx.input))}


class LedgerConsistency:
    """Consistency predicate over a :class:`LedgerSnapshot` (see the module docs).

    Args:
        absorbing_roles: Roles allowed to differ from the pre-workflow snapshot.
        net_zero_roles: Roles that must net to zero over the workflow.
        ledger_service: Service name of the ledger.
        key: Key of the ledger section in the snapshot dict.
    """

    def __init__(
        self,
        *,
        absorbing_roles: Sequence[str] = ("fx_liquidity", "pnl"),
        net_zero_roles: Sequence[str] = ("holding", "nostro"),
        ledger_service: str = "ledger",
        key: str = "ledger",
    ) -> None:
        self.absorbing = frozenset(absorbing_roles)
        self.net_zero = frozenset(net_zero_roles)
        self.ledger_service = ledger_service
        self.key = key

    def __call__(self, ctx: PredicateContext) -> Check:
        """Evaluate after a rollback."""
        ledger = lookup_service(ctx.services, self.ledger_service, LedgerAPI,
                                where=f"predicate of {ctx.workflow!r}")
        remaining = set(ctx.results) if ctx.checkpoint is not None else set()
        return self.evaluate(ctx.saga_id, ctx.pre_state or {}, ctx.post_state or {}, ledger,
                             steps_in_effect=remaining)

    def evaluate(
        self,
        saga_id: str,
        pre_state: Mapping[str, Any],
        post_state: Mapping[str, Any],
        ledger: LedgerAPI,
        *,
        steps_in_effect: set[str] | None = None,
    ) -> Check:
        """The predicate on explicit states (reusable inside a composite predicate)."""
        pre: Mapping[str, Any] = pre_state.get(self.key, {})
        post: Mapping[str, Any] = post_state.get(self.key, {})
        problems: list[str] = []
        absorbed: dict[str, int] = {}
        for acct in sorted(set(pre) | set(post)):
            before = pre.get(acct) or {"posted": 0, "pending": 0}
            after = post.get(acct) or {"posted": 0, "pending": 0}
            role = after.get("role") if after.get("role") != "absent" else before.get("role")
            currency = after.get("currency") or before.get("currency") or ""
            d_posted = after["posted"] - before["posted"]
            d_pending = after["pending"] - before["pending"]
            if role in self.absorbing:
                absorbed[currency] = absorbed.get(currency, 0) + d_posted + d_pending
                continue
            if d_posted or d_pending:
                what = "does not net to zero" if role in self.net_zero else "is not restored"
                problems.append(
                    f"{acct} ({role}) {what}: posted {_signed(d_posted, currency)}, "
                    f"pending {_signed(d_pending, currency)}")
        for currency, total in sorted(absorbed.items()):
            if total:
                problems.append(
                    f"absorbing accounts in {currency} do not net to zero "
                    f"({_signed(total, currency)}): money left the scope")
        problems.extend(self._undone(saga_id, ledger, steps_in_effect or set()))
        ok = not problems
        net_zero_roles = "/".join(sorted(self.net_zero))
        reason = (
            f"all balances (pending included) restored; {net_zero_roles} accounts net to "
            "zero; every booked transfer voided or corrected"
            if ok else "; ".join(problems)
        )
        return Check(ok, reason, {"problems": problems, "absorbed": absorbed})

    @staticmethod
    def _undone(saga_id: str, ledger: LedgerAPI, in_effect: set[str]) -> list[str]:
        problems: list[str] = []
        standing = tuple(key_prefix(saga_id, step) for step in in_effect)
        for t in ledger.find_transfers(prefix=key_prefix(saga_id)):
            if t.corrects is not None or t.code in UNDO_CODES or t.kind in (
                TransferKind.POST, TransferKind.VOID,
            ):
                continue  # an undo, or the resolution of a hold: not an original
            if standing and t.id.startswith(standing):
                continue  # a checkpoint rollback leaves this step's effect standing
            if t.kind == TransferKind.PENDING and t.state in (
                PendingState.VOIDED, PendingState.EXPIRED, PendingState.PENDING,
            ):
                if t.state == PendingState.PENDING:
                    problems.append(f"hold {t.id} is still pending")
                continue
            posted = t.amount
            if t.kind == TransferKind.PENDING:
                posts = ledger.find_transfers(pending_id=t.id)
                posted = sum(p.amount for p in posts if p.kind == TransferKind.POST)
            corrected = sum(c.amount for c in ledger.find_transfers(corrects=t.id))
            if corrected != posted:
                problems.append(
                    f"transfer {t.id} ({format_money(posted, t.currency)}) is corrected by "
                    f"{format_money(corrected, t.currency)} only")
        return problems


def _signed(amount: int, currency: str) -> str:
    sign = "+" if amount >= 0 else "-"
    return f"{sign}{format_money(abs(amount), currency or 'XXX')}"
