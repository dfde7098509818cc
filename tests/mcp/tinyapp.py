"""A one-step catalog for command-line tests (imports nothing heavy).

Its step reports which ``Stamp`` service it was handed, so a test can tell the
catalog's services from those ``--services`` gives.
"""

from __future__ import annotations

from dataclasses import dataclass

from reversa import Registry, Saga, Step, StepContext
from reversa.mcp import Catalog, Workflow

registry = Registry()


@dataclass(frozen=True)
class Stamp:
    """A service with nothing but a name."""

    name: str


@registry.action("tiny.note")
def note(ctx: StepContext) -> dict[str, str]:
    return {"noted": str(ctx.param("text")), "stamp": ctx.service("stamp", Stamp).name}


@registry.compensation("tiny.unnote")
def unnote(ctx: StepContext) -> None:
    return None


@registry.predicate("tiny.ok")
def ok(ctx: object) -> bool:
    return True


NOTE = Saga(workflow="tiny.note", predicate="tiny.ok", steps=[Step(
    name="note", action="tiny.note", compensation="tiny.unnote",
    params={"text": "$input.text"})])
"""The module's one workflow: ``--app tests.mcp.tinyapp:registry`` serves it too."""


def catalog() -> Catalog:
    return Catalog(registry, [Workflow(NOTE, "Write a note.")],
                   services={"stamp": Stamp("the catalog's")})


def services() -> dict[str, Stamp]:
    """What ``--services tests.mcp.tinyapp:services`` hands the handlers instead."""
    return {"stamp": Stamp("from --services")}


NOT_A_CATALOG = "just a string"
