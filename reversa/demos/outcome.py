"""What a demo scenario returns: its exit code and the sagas it started.

``reversa demo --json`` reports exactly these sagas, so two demos sharing a
database (or a database with history) never report each other's runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console

__all__ = ["Demo", "DemoRun"]


@dataclass(frozen=True)
class DemoRun:
    """The result of one demo scenario.

    Attributes:
        code: Process exit code: 0 when the story went as designed.
        saga_ids: Every saga the scenario started, in order.
    """

    code: int
    saga_ids: tuple[str, ...]

    @classmethod
    def of(cls, ok: bool, *saga_ids: str) -> DemoRun:
        """Exit code 0 if ``ok`` else 1, for the sagas given."""
        return cls(0 if ok else 1, saga_ids)


Demo = Callable[[str, Console], DemoRun]
"""A scenario: runs on the store at a database URL, narrates on the console."""
