"""Reversa: governed rollback for multi-step agent workflows.

A workflow either completes, or is governed back to a consistent state, or is
handed to a human with a full report. See ``docs/concepts.md``.
"""

from .core.audit import AuditProblem, AuditReport
from .core.clock import Clock, FakeClock, SystemClock
from .core.context import (
    Check,
    CostEstimate,
    EffectJournal,
    Fence,
    JournalRecord,
    PredicateContext,
    Probe,
    SnapshotContext,
    StepContext,
)
from .core.engine import DryRunReport, Engine, StepFinding
from .core.errors import (
    AuditError,
    ConfigError,
    EmergencyStop,
    Fenced,
    IllegalTransition,
    LeaseLost,
    NotFound,
    OutcomeUnknown,
    PermanentError,
    PlanError,
    PlanTampered,
    PreconditionFailed,
    ReversaError,
    ReversaSignal,
    RollbackRequested,
    SchemaError,
    ShutdownRequested,
    StepError,
    StoreError,
    TransientError,
)
from .core.fencing import FenceGate
from .core.governance import Approval, ApprovalKind, ApprovalStatus, Decision, FourEyes
from .core.inspector import Inspector
from .core.model import (
    CompensationKind,
    Escalation,
    OnCrash,
    OnFailure,
    OnInfeasible,
    Retry,
    Reversibility,
    Saga,
    Step,
)
from .core.observe import Observer
from .core.plan import Plan, validate
from .core.registry import HandlerKind, Operation, Registry
from .core.states import Phase, SagaStatus, StepStatus
from .core.store import Store
from .core.views import (
    AttemptView,
    AuditEntry,
    EscalationView,
    OutboxEntry,
    RollbackView,
    SagaResult,
    SagaSummary,
    SagaView,
    StepView,
)
from .core.worker import Worker

__version__ = "0.1.0"

__all__ = [
    # definitions
    "Saga", "Step", "Retry", "Escalation", "Reversibility", "CompensationKind",
    "OnFailure", "OnCrash", "OnInfeasible", "Plan", "validate",
    # handlers
    "Registry", "Operation", "HandlerKind", "StepContext", "SnapshotContext",
    "PredicateContext", "Check", "CostEstimate", "Probe",
    # the effect boundary
    "Fence", "FenceGate", "EffectJournal", "JournalRecord",
    # running
    "Engine", "Store", "Worker", "Clock", "SystemClock", "FakeClock", "DryRunReport", "StepFinding",
    # inspecting
    "Inspector",
    # state and records
    "SagaStatus", "StepStatus", "Phase", "SagaResult", "SagaSummary", "SagaView", "StepView",
    "AttemptView", "AuditEntry", "RollbackView", "EscalationView", "AuditReport",
    "AuditProblem",
    # errors
    "ReversaError", "PlanError", "ConfigError", "StoreError", "IllegalTransition",
    "LeaseLost", "NotFound", "SchemaError", "StepError", "TransientError", "PermanentError",
    "OutcomeUnknown", "PreconditionFailed", "AuditError", "ReversaSignal", "EmergencyStop",
    "Fenced", "PlanTampered",
    "ShutdownRequested", "RollbackRequested",
    # governance
    "Approval", "ApprovalKind", "ApprovalStatus", "Decision", "FourEyes", "OutboxEntry",
    "Observer",
    "__version__",
]
