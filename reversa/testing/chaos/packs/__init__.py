"""Workflow packs: the workflows a simulation runs, with the services they call.

A pack gives the simulator its workflows (step names, so the schedule can pick a
step a service will decline), builds a fresh world of simulated services for each
schedule, the registry every process loads, the services mapping each process
hands its engine (ports that route calls through the simulated network and die
with the process), and the effect log counted AT THE SERVICES, which the
invariants read. ``core`` exercises every engine feature; ``payments`` runs the
payments adapter's own operations against the simulated bank; ``evm`` runs the EVM
adapter's approvals on the in-process chain; ``robot`` runs the robot adapter's
pick, place and move in simulated PCB cells (PyBullet), one per saga, through
in-process ports. Other packs plug in here with :func:`register_pack`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ....core.model import Saga
    from ....core.registry import Registry
    from ..faults import SagaPlan
    from ..network import Network
    from ..process import Process

__all__ = ["PACKS", "Effects", "PackWorld", "WorkflowPack", "pack_names", "register_pack"]


@dataclass
class Effects:
    """What the services did, counted where it happened.

    Attributes:
        applied: Forward effects that took place, by the call's idempotency key,
            each as ``(saga id, step)``.
        undone: How many times an undo was APPLIED to the effect with that key
            (a service that refunds by reference: two different undo keys for one
            effect refund twice, which is what this counter catches).
        recovered: Forward-recovery effects applied, by the forward call's key.
        refused: Calls refused at the boundary (stale fencing token or blocked key).
        calls: Requests that reached a service, by key (duplicates included).
    """

    applied: dict[str, tuple[str, str]] = field(default_factory=dict)
    undone: Counter[str] = field(default_factory=Counter)
    recovered: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    calls: Counter[str] = field(default_factory=Counter)

    def standing(self, key: str) -> bool:
        """Whether the effect with ``key`` happened and was not undone."""
        return key in self.applied and self.undone[key] == 0


class PackWorld(Protocol):
    """One schedule's services for a pack."""

    def registry(self) -> Registry:
        """Handlers of every workflow of the pack (shared by every process)."""
        ...

    def services_for(self, proc: Process, network: Network) -> Mapping[str, Any]:
        """The services mapping ``proc``'s engine hands its handlers."""
        ...

    def saga(self, plan: SagaPlan) -> tuple[Saga, dict[str, Any]]:
        """The saga definition and input of one planned saga."""
        ...

    def effects(self) -> Effects:
        """The effect log, counted at the services."""
        ...

    def close_window(self, saga_id: str) -> None:
        """Make the compensation of ``saga_id`` infeasible from now on (a fault)."""
        ...


class WorkflowPack(Protocol):
    """A named set of workflows and the services they need."""

    name: str

    def workflows(self) -> dict[str, tuple[str, ...]]:
        """Workflow name -> its step names."""
        ...

    def world(self, seed: int) -> PackWorld:
        """A fresh world of services for one schedule."""
        ...


PACKS: dict[str, Callable[[], WorkflowPack]] = {}
"""Pack factories by name."""


def register_pack(name: str, factory: Callable[[], WorkflowPack]) -> None:
    """Make a pack available to simulations and to ``reversa chaos --pack``."""
    PACKS[name] = factory


def pack_names() -> list[str]:
    """Names of the packs available (core first)."""
    _builtin()
    return sorted(PACKS, key=lambda n: (n != "core", n))


def _builtin() -> None:
    if "core" not in PACKS:
        from .core import CorePack

        register_pack("core", CorePack)
    if "payments" not in PACKS:
        try:
            from .payments import PaymentsPack
        except ImportError:  # the payments extra is not installed
            pass
        else:
            register_pack("payments", PaymentsPack)
    if "evm" not in PACKS:
        try:
            from .evm import EvmPack
        except ImportError:  # the evm extra is not installed
            pass
        else:
            register_pack("evm", EvmPack)
    if "robot" not in PACKS:
        try:
            from .robot import RobotPack
        except ImportError:  # the robot extra (PyBullet, python-fcl) is not installed
            return
        register_pack("robot", RobotPack)
