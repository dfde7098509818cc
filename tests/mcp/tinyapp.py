"""A one-step catalog for command-line tests (imports nothing heavy)."""

from __future__ import annotations

from reversa import Registry, Saga, Step, StepContext
from reversa.mcp import Catalog, Workflow

registry = Registry()


@registry.action("tiny.note")
def note(ctx: StepContext) -> dict[str, str]:
    return {"noted": str(ctx.param("text"))}


@registry.compensation("tiny.unnote")
def unnote(ctx: StepContext) -> None:
    return None


@registry.predicate("tiny.ok")
def ok(ctx: object) -> bool:
    return True


def catalog() -> Catalog:
    saga = Saga(workflow="tiny.note", predicate="tiny.ok", steps=[Step(
        name="note", action="tiny.note", compensation="tiny.unnote",
        params={"text": "$input.text"})])
    return Catalog(registry, [Workflow(saga, "Write a note.")])


NOT_A_CATALOG = "just a string"
