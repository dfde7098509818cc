"""The public surface is pinned: a change here is a deliberate API change."""

from __future__ import annotations

import reversa
import reversa.testing

EXPECTED = {
    "Saga", "Step", "Retry", "Escalation", "Reversibility", "CompensationKind", "OnFailure",
    "OnCrash", "OnInfeasible", "Plan", "validate", "Registry", "Operation", "HandlerKind",
    "StepContext", "SnapshotContext", "PredicateContext", "Check", "CostEstimate", "Probe",
    "Engine", "Store", "Worker", "Clock", "SystemClock", "FakeClock", "DryRunReport",
    "StepFinding", "SagaStatus", "StepStatus", "Phase", "SagaResult", "SagaView",
    "StepView", "AttemptView", "AuditEntry", "RollbackView", "EscalationView",
    "AuditReport", "AuditProblem", "ReversaError", "PlanError", "ConfigError", "StoreError",
    "IllegalTransition", "LeaseLost", "NotFound", "SchemaError", "StepError",
    "TransientError", "PermanentError", "OutcomeUnknown", "PreconditionFailed", "AuditError",
    "ReversaSignal", "EmergencyStop", "ShutdownRequested", "__version__",
    "Inspector", "SagaSummary",
    "Fence", "FenceGate", "EffectJournal", "JournalRecord", "Fenced", "PlanTampered",
    "Approval", "ApprovalKind", "ApprovalStatus", "Decision", "FourEyes", "OutboxEntry",
    "Observer", "RollbackRequested",
}


def test_public_exports_are_pinned() -> None:
    assert set(reversa.__all__) == EXPECTED
    for name in reversa.__all__:
        assert hasattr(reversa, name), name


def test_testing_exports_are_pinned() -> None:
    assert set(reversa.testing.__all__) == {
        "FailurePoint", "InjectedFault", "expected_status", "failure_points", "inject",
        "run_failure_point"}


def test_signals_are_base_exceptions() -> None:
    assert not issubclass(reversa.EmergencyStop, Exception)
    assert issubclass(reversa.OutcomeUnknown, reversa.ReversaError)


def test_core_imports_no_domain_libraries() -> None:
    import subprocess
    import sys

    code = ("import sys, reversa, reversa.testing; "
            "bad = [m for m in ('web3', 'ccxt', 'roslibpy', 'serial', 'fcl') if m in sys.modules];"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert out == "[]"
