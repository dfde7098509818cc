"""The payments acceptance stories as ready-made sagas (examples, demos and tests use them).

- :mod:`.procurement`: AG-166 scenario A (procurement with a logistics pre-step webhook).
- :mod:`.cross_border`: AG-166 scenario C (sanctions rejection, crash mid-compensation).
- :mod:`.mt103`: AG-384 scenario A (MT103 timeout, FX reversal cost, ledger corrections).

``registry()`` holds every payments operation plus these stories' snapshots and
predicates; workers load it with ``--app reversa.demos.payments:registry``.
"""

from __future__ import annotations

from typing import Any

from reversa.adapters.payments.registry import payments_registry
from reversa.core.registry import Registry

from . import cross_border, mt103, procurement
from .world import ACCOUNTS, PaymentsWorld, build_world

__all__ = [
    "ACCOUNTS",
    "APP",
    "SERVICES",
    "PaymentsWorld",
    "build_world",
    "cross_border",
    "mt103",
    "procurement",
    "registry",
    "services",
]

APP = "reversa.demos.payments:registry"
"""Import path of :func:`registry`, recorded in the stories' plans."""

SERVICES = "reversa.demos.payments:services"
"""Import path of :func:`services`, recorded next to :data:`APP`."""


def services() -> dict[str, Any]:
    """The services of a fresh simulated bank, for reviewing the stories' sagas later.

    The bank a story ran against lived in its process; a reviewer's retry or
    dry-run from the CLI (which imports this through :data:`SERVICES`) runs
    against this new one, with its opening balances.
    """
    return build_world().services()


def registry() -> Registry:
    """A fresh registry with the payments operations and the stories' checks."""
    reg = payments_registry()
    for story in (procurement, cross_border, mt103):
        story.register(reg)
    return reg
