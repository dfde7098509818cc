"""``reversa sim``: run the simulators as services on loopback."""

from __future__ import annotations

import errno
import importlib
from enum import StrEnum
from typing import Annotated

import typer

from .common import ExitCode, fail


class Simulator(StrEnum):
    """The simulators ``reversa sim`` can serve."""

    LEDGER = "ledger"
    ROSBRIDGE = "rosbridge"
    GRIPPER = "gripper"


# name -> (module, serve function, extra that installs its libraries, listens on a port)
SIMULATORS: dict[Simulator, tuple[str, str, str, bool]] = {
    Simulator.LEDGER: ("reversa.simulators.ledger.http", "serve", "payments-sim", True),
    Simulator.ROSBRIDGE: ("reversa.simulators.robot.rosbridge", "serve", "robot-sim", True),
    Simulator.GRIPPER: ("reversa.simulators.robot.serial_gripper", "serve", "robot-sim", False),
}


def register(app: typer.Typer) -> None:
    """Attach ``reversa sim NAME``."""

    @app.command("sim")
    def sim(
        name: Annotated[Simulator, typer.Argument(help="Which simulator to serve.")],
        port: Annotated[int | None, typer.Option(
            min=0, max=65535,
            help="Loopback TCP port (0: any free one; default: the simulator's own).")]
        = None,
    ) -> None:
        """Serve a simulator on 127.0.0.1 until interrupted."""
        module, func, extra, listens = SIMULATORS[name]
        if port is not None and not listens:
            fail(f"the {name} simulator serves a pseudo-terminal, not a TCP port; drop --port")
        try:
            serve = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as exc:
            fail(f"simulator {name!r} needs the {extra!r} extra "
                 f"(pip install 'reversa[{extra}]'): {exc}")
        try:
            serve() if port is None else serve(port)
        except OSError as exc:
            shown = "its default port" if port is None else f"port {port}"
            if exc.errno == errno.EADDRINUSE:
                fail(f"cannot serve the {name} simulator: {shown} on 127.0.0.1 is already in "
                     "use; pick another with --port, or --port 0 for any free one")
            if exc.errno == errno.EACCES:
                fail(f"cannot serve the {name} simulator: no permission to listen on {shown}; "
                     "use a port above 1023, or --port 0 for any free one")
            fail(f"cannot serve the {name} simulator on {shown}: {exc}", ExitCode.USAGE)
