"""The saga engine."""

from .dryrun import DryRunReport, StepFinding
from .engine import Engine

__all__ = ["DryRunReport", "Engine", "StepFinding"]
