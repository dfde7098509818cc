"""Plans: steps classed by rail finality, validation, and the pinned public API."""

from __future__ import annotations

import pytest

import reversa.adapters.payments as payments
from reversa import CompensationKind, Escalation, PlanError, Registry, Reversibility, Saga
from reversa import validate as validate_plan
from reversa.adapters.payments import DEFAULT_RAILS, Rail, payment_step
from reversa.demos.payments import cross_border, mt103, procurement
from reversa.demos.payments.demos import DEMOS

PARAMS = {"debit_account": "ops:GBP", "amount": "10.00", "currency": "GBP",
          "beneficiary": "X"}
ESC = Escalation(reason="final; a human recalls it")


@pytest.mark.parametrize(
    ("rail", "expected"),
    [
        (Rail.INTERNAL, Reversibility.REVERSIBLE),
        (Rail.CARD, Reversibility.REVERSIBLE),
        (Rail.SWIFT, Reversibility.PARTIAL),
        (Rail.CHAPS, Reversibility.IRREVERSIBLE),
        (Rail.FEDWIRE, Reversibility.IRREVERSIBLE),
        (Rail.TARGET2, Reversibility.IRREVERSIBLE),
        (Rail.SEPA_INSTANT, Reversibility.IRREVERSIBLE),
    ],
)
def test_rail_finality_classes_the_step(reg: Registry, rail: Rail, expected: Reversibility
                                        ) -> None:
    step = payment_step(reg, "pay", rail=rail, params=PARAMS, escalation=ESC)
    assert step.reversibility is expected
    assert step.params["finality"]["final_on_execution"] is (expected is
                                                              Reversibility.IRREVERSIBLE)
    assert (step.compensation is None) is (expected is Reversibility.IRREVERSIBLE)
    if expected is Reversibility.PARTIAL:
        assert step.compensation_kind is CompensationKind.SEMANTIC
    saga = Saga(workflow="w", steps=(step,), predicate="payments.ag166c.cross_border.predicate")
    validate_plan(saga, reg)  # every class passes validation with its policy


def test_final_rail_without_escalation_is_refused(reg: Registry) -> None:
    with pytest.raises(PlanError, match="final on execution"):
        payment_step(reg, "pay", rail=Rail.CHAPS, params=PARAMS)
    # The engine's own validation says the same about a hand-built irreversible step.
    step = reg.step("pay", "payments.pay", reversibility=Reversibility.IRREVERSIBLE,
                    compensation=None, params=PARAMS)
    with pytest.raises(PlanError, match="neither forward_recovery nor escalation"):
        validate_plan(Saga(workflow="w", steps=(step,), predicate="x"), reg)


def test_configured_rail_changes_the_class(reg: Registry) -> None:
    slow_chaps = dict(DEFAULT_RAILS)
    slow_chaps[Rail.CHAPS] = DEFAULT_RAILS[Rail.SWIFT].__class__(
        Rail.CHAPS, 3_600.0, True, DEFAULT_RAILS[Rail.CHAPS].after_finality)
    step = payment_step(reg, "pay", rail=Rail.CHAPS, rails=slow_chaps, params=PARAMS)
    assert step.reversibility is Reversibility.PARTIAL


def test_unknown_rail(reg: Registry) -> None:
    with pytest.raises(PlanError, match="known rails"):
        payment_step(reg, "pay", rail="pigeon", params=PARAMS)


def test_story_plans_validate(reg: Registry) -> None:
    for saga in (procurement.saga(reg), cross_border.saga(reg), mt103.saga(reg)):
        plan = validate_plan(saga, reg)
        assert plan.hash
    credit = cross_border.saga(reg).steps[-1]
    assert credit.reversibility is Reversibility.IRREVERSIBLE and credit.escalation


def test_public_api_is_pinned() -> None:
    assert sorted(payments.__all__) == sorted([
        "LedgerTransfer", "LedgerHold", "PostHold", "RailPayment", "FxConvert",
        "CancelInFlightPayments", "SendNotice", "ReserveStock", "CreatePurchaseOrder",
        "NotifyLogistics", "ConfirmShipment", "payment_step", "payments_registry",
        "correct_remaining", "Rail", "RailSpec", "AfterFinality", "DEFAULT_RAILS",
        "rail_spec", "LedgerSnapshot", "LedgerConsistency", "UNDO_CODES", "ReversalPolicy",
        "ReversalEstimate", "BookWalk", "estimate_reversal", "walk_book", "conversion_side",
        "LedgerAPI", "Account", "AccountRole", "Transfer", "TransferKind", "TransferRequest",
        "PendingState", "Payment", "PaymentRequest", "PaymentStatus", "Recall",
        "RecallStatus", "LedgerError", "LedgerTimeout", "LedgerUnavailable", "LedgerRejected",
        "IdempotencyConflict", "LedgerNotFound", "InvalidState", "LedgerFenced", "FxFenced",
        "to_minor", "to_major", "format_money",
    ])
    for name in payments.__all__:
        assert getattr(payments, name) is not None
    assert sorted(DEMOS) == ["payments-ag166a", "payments-ag166c", "payments-ag384a"]
    assert all((fn.__doc__ or "").strip() for fn in DEMOS.values())


def test_simulator_entry_points() -> None:
    import inspect

    from reversa.simulators.ledger import http

    params = inspect.signature(http.serve).parameters
    # `reversa sim ledger` calls serve(port) or serve() (any free port).
    assert (params["port"].default, params["host"].default) == (0, "127.0.0.1")
