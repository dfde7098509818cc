"""The robot cell's demos and story sagas, above the adapter and the simulators.

``scenarios.DEMOS`` are the ``reversa demo robot-*`` scenarios; ``workflows``
holds the PCB cell's sagas (AG-384 scenario B, a reversible transfer job).
"""

from __future__ import annotations

from .workflows import scenario_b_saga, transfer_saga

__all__ = ["scenario_b_saga", "transfer_saga"]
