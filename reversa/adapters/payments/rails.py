"""Payment rails and their settlement finality.

The finality of a rail decides how a payment on it can be undone, and so how a
step that pays on it is classed in the plan:

====================  ==========  ===========  =================  ==========================
rail                  settles     cancellable  after settlement   plan class
====================  ==========  ===========  =================  ==========================
internal book         at once     -            correcting entry   reversible
CHAPS                 at once     no           recall (consent)   irreversible
Fedwire Funds         at once     no           recall (consent)   irreversible
TARGET2 (T2 RTGS)     at once     no           recall (consent)   irreversible
SEPA Instant          <= 10 s     no           recall (consent)   irreversible
card                  T+1         void auth    refund             reversible
SWIFT MT103           hours       MT192/gSRP   recall (consent)   partially reversible
====================  ==========  ===========  =================  ==========================

A rail that is *final on execution* (irrevocable the moment it accepts the
payment) can only be undone by a recall the beneficiary bank may refuse
(camt.056), so its step is :attr:`~reversa.Reversibility.IRREVERSIBLE` and the
plan must give it a forward recovery or an escalation policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reversa.core.errors import PlanError
from reversa.core.model import Reversibility

__all__ = ["DEFAULT_RAILS", "AfterFinality", "Rail", "RailSpec", "rail_spec"]


class Rail(StrEnum):
    """The payment rails the adapter knows."""

    INTERNAL = "internal"
    CHAPS = "chaps"
    FEDWIRE = "fedwire"
    TARGET2 = "target2"
    SEPA_INSTANT = "sepa_instant"
    CARD = "card"
    SWIFT = "swift_mt103"


class AfterFinality(StrEnum):
    """How a settled payment is undone."""

    CORRECTION = "correction"
    """We own both books: a correcting entry that references the original."""
    REFUND = "refund"
    """A refund we may issue without the counterparty's consent (cards)."""
    RECALL = "recall"
    """A recall request (camt.056) that the beneficiary bank may refuse."""


@dataclass(frozen=True, slots=True)
class RailSpec:
    """Settlement behaviour of one rail.

    Attributes:
        rail: The rail.
        settlement_delay_s: Time from acceptance to settlement (0: settles on
            acceptance).
        cancellable_before_settlement: Whether the payer may cancel a payment
            the rail accepted but has not settled yet.
        after_finality: How a settled payment is undone.
        description: One line for docs and reports.
    """

    rail: Rail
    settlement_delay_s: float
    cancellable_before_settlement: bool
    after_finality: AfterFinality
    description: str = ""

    @property
    def final_on_settlement(self) -> bool:
        """After settlement only the counterparty can give the money back."""
        return self.after_finality is AfterFinality.RECALL

    @property
    def final_on_execution(self) -> bool:
        """Irrevocable the moment the rail accepts the payment."""
        return self.final_on_settlement and (
            self.settlement_delay_s <= 0 or not self.cancellable_before_settlement
        )

    @property
    def reversibility(self) -> Reversibility:
        """How a step paying on this rail is classed in the plan."""
        if self.final_on_execution:
            return Reversibility.IRREVERSIBLE
        if self.final_on_settlement:
            return Reversibility.PARTIAL
        return Reversibility.REVERSIBLE

    def to_dict(self) -> dict[str, object]:
        """JSON form recorded in the plan, so the stored plan shows the finality."""
        return {
            "rail": str(self.rail),
            "settlement_delay_s": self.settlement_delay_s,
            "cancellable_before_settlement": self.cancellable_before_settlement,
            "after_finality": str(self.after_finality),
            "final_on_execution": self.final_on_execution,
            "reversibility": str(self.reversibility),
        }


DEFAULT_RAILS: dict[Rail, RailSpec] = {
    Rail.INTERNAL: RailSpec(
        Rail.INTERNAL, 0.0, False, AfterFinality.CORRECTION,
        "book transfer between two accounts we hold",
    ),
    Rail.CHAPS: RailSpec(
        Rail.CHAPS, 0.0, False, AfterFinality.RECALL,
        "UK RTGS: final and irrevocable on settlement in the RTGS",
    ),
    Rail.FEDWIRE: RailSpec(
        Rail.FEDWIRE, 0.0, False, AfterFinality.RECALL,
        "US RTGS: final and irrevocable when the receiving bank is credited",
    ),
    Rail.TARGET2: RailSpec(
        Rail.TARGET2, 0.0, False, AfterFinality.RECALL,
        "euro RTGS (T2): final on settlement",
    ),
    Rail.SEPA_INSTANT: RailSpec(
        Rail.SEPA_INSTANT, 10.0, False, AfterFinality.RECALL,
        "SCT Inst: irrevocable once accepted, settles within 10 s",
    ),
    Rail.CARD: RailSpec(
        Rail.CARD, 86_400.0, True, AfterFinality.REFUND,
        "authorisation then capture; void before settlement, refund after",
    ),
    Rail.SWIFT: RailSpec(
        Rail.SWIFT, 7_200.0, True, AfterFinality.RECALL,
        "correspondent banking: cancel (MT192/gSRP) before credit, recall after",
    ),
}


def rail_spec(rail: Rail | str, rails: dict[Rail, RailSpec] | None = None) -> RailSpec:
    """Look up a rail's spec.

    Raises:
        PlanError: The rail is unknown (the message lists the known ones).
    """
    table = DEFAULT_RAILS if rails is None else rails
    try:
        return table[Rail(rail)]
    except (ValueError, KeyError):
        known = ", ".join(str(r) for r in table)
        raise PlanError(f"unknown rail {rail!r}; known rails: {known}") from None
