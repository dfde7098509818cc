"""``reversa sim``: run the simulators as services on loopback."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from .common import fail

SIMULATORS = {
    "ledger": ("reversa.simulators.ledger.http", "serve", "payments-sim"),
    "rosbridge": ("reversa.simulators.robot.rosbridge", "serve", "robot-sim"),
    "gripper": ("reversa.simulators.robot.serial_gripper", "serve", "robot-sim"),
}


def register(app: typer.Typer) -> None:
    """Attach ``reversa sim NAME``."""

    @app.command("sim")
    def sim(
        name: Annotated[str, typer.Argument(help=f"One of: {', '.join(SIMULATORS)}")],
        port: Annotated[int, typer.Option(help="Loopback port to listen on.")] = 0,
    ) -> None:
        """Serve a simulator on 127.0.0.1 until interrupted."""
        if name not in SIMULATORS:
            fail(f"no simulator {name!r}; choose one of {', '.join(SIMULATORS)}")
        module, func, extra = SIMULATORS[name]
        try:
            serve = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as exc:
            fail(f"simulator {name!r} needs the {extra!r} extra "
                 f"(pip install 'reversa[{extra}]'): {exc}")
        serve(port) if port else serve()
