"""Testing Reversa workflows: failure points, deterministic fault simulation, a pytest plugin.

- :func:`failure_points` / :func:`run_failure_point` test every failure point of
  your saga (AG-384 4.8); the pytest plugin (``reversa.testing.plugin``, loaded
  automatically) turns them into one test each.
- :mod:`reversa.testing.chaos` runs many sagas under one seeded scheduler with
  crashes, pauses, late and duplicated effects and database faults, and checks
  Reversa's guarantees at the services (``reversa chaos`` on the command line).
"""

from ._failure_points import (
    KINDS,
    FailurePoint,
    InjectedCrash,
    InjectedFault,
    expected_status,
    failure_points,
    inject,
    run_failure_point,
)

__all__ = [
    "KINDS",
    "FailurePoint",
    "InjectedCrash",
    "InjectedFault",
    "expected_status",
    "failure_points",
    "inject",
    "run_failure_point",
]
