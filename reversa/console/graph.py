"""A saga plan's dependency graph as SVG, drawn on the server.

Plans are small DAGs (a handful to a few dozen steps), so a layered drawing is
enough: a step's column is the length of the longest dependency chain before it,
and each column is ordered by the mean row of the steps it depends on (two
barycentre sweeps, as Sugiyama's method does) to keep edges short. Graphviz
would need a system binary on every console host, and no pure-Python layout
library is maintained, so the ~100 lines live here.

Each step is coloured by its state and carries its place in the compensation
order: the order of the latest rollback record when there is one, else the
order a rollback started now would follow (same number: undone together).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from ..core.states import StepStatus
from ..core.views import SagaView

__all__ = ["STATUS_COLOURS", "Graph", "Node", "compensation_order", "layout", "legend",
           "render_svg"]

STATUS_COLOURS: dict[str, str] = {
    StepStatus.PENDING: "#e5e7eb",
    StepStatus.RUNNING: "#fde68a",
    StepStatus.COMPLETED: "#bbf7d0",
    StepStatus.FAILED: "#fecaca",
    StepStatus.SKIPPED: "#f3f4f6",
    StepStatus.COMPENSATING: "#fde68a",
    StepStatus.COMPENSATED: "#bfdbfe",
    StepStatus.COMPENSATION_FAILED: "#fca5a5",
    StepStatus.ESCALATED: "#fdba74",
}
_IN_EFFECT = {StepStatus.COMPLETED, StepStatus.COMPENSATING, StepStatus.COMPENSATION_FAILED,
              StepStatus.RUNNING}
W, H, GAP_X, GAP_Y, MARGIN = 170, 52, 60, 24, 16


@dataclass(frozen=True)
class Node:
    """One step placed on the drawing."""

    name: str
    status: str
    reversibility: str
    column: int
    row: int
    x: float
    y: float
    comp_order: int | None


@dataclass(frozen=True)
class Graph:
    """The placed steps, their dependency edges and what the order numbers mean."""

    nodes: list[Node]
    edges: list[tuple[str, str]]
    width: float
    height: float
    order_source: str

    def node(self, name: str) -> Node:
        """The node of step ``name``."""
        return next(n for n in self.nodes if n.name == name)


def compensation_order(view: SagaView) -> tuple[dict[str, int], str]:
    """Each step's place in the compensation order, and where the order comes from."""
    if view.rollbacks:
        latest = view.rollbacks[-1]
        order: dict[str, int] = {}
        for entry in latest.record.get("compensations", []):
            if entry.get("outcome") != "held" and entry.get("step") not in order:
                order[str(entry["step"])] = len(order) + 1
        if order:
            return order, f"rollback #{latest.id}"
    deps = {s.name: set(s.depends_on) for s in view.steps}
    remaining = [s.name for s in view.steps if s.status in _IN_EFFECT]
    planned: dict[str, int] = {}
    wave = 0
    while remaining:
        wave += 1
        pending = set(remaining)
        # A step waits while a step that depends on it (directly or not) is still in effect.
        ready = [n for n in remaining if not (_descendants(n, deps) & pending)]
        for name in ready:
            planned[name] = wave
            remaining.remove(name)
    return planned, "planned (a rollback started now)"


def _descendants(name: str, deps: dict[str, set[str]]) -> set[str]:
    found: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        for child, parents in deps.items():
            if current in parents and child not in found:
                found.add(child)
                todo.append(child)
    return found


def layout(view: SagaView) -> Graph:
    """Place every step of ``view``'s plan in columns by dependency depth."""
    steps = sorted(view.steps, key=lambda s: s.position)
    column: dict[str, int] = {}
    for step in steps:  # plan order is topological: dependencies come first
        column[step.name] = 1 + max((column[d] for d in step.depends_on), default=-1)
    columns: list[list[str]] = [[] for _ in range(max(column.values(), default=-1) + 1)]
    for step in steps:
        columns[column[step.name]].append(step.name)
    parents = {s.name: list(s.depends_on) for s in steps}
    row = {name: i for col in columns for i, name in enumerate(col)}
    for _ in range(2):
        for col in columns[1:]:
            col.sort(key=lambda n: (sum(row[p] for p in parents[n]) / len(parents[n]), row[n]))
            row.update({name: i for i, name in enumerate(col)})
    tallest = max((len(c) for c in columns), default=0)
    order, source = compensation_order(view)
    nodes = []
    for step in steps:
        c, r = column[step.name], row[step.name]
        offset = (tallest - len(columns[c])) * (H + GAP_Y) / 2
        nodes.append(Node(step.name, step.status.value, step.reversibility, c, r,
                          MARGIN + c * (W + GAP_X), MARGIN + offset + r * (H + GAP_Y),
                          order.get(step.name)))
    edges = [(d, s.name) for s in steps for d in s.depends_on]
    width = 2 * MARGIN + max(len(columns), 1) * (W + GAP_X) - GAP_X
    height = 2 * MARGIN + max(tallest, 1) * (H + GAP_Y) - GAP_Y + 14
    return Graph(nodes, edges, width, height, source)


def render_svg(graph: Graph) -> str:
    """The graph as a standalone SVG document (every text escaped)."""
    by_name = {n.name: n for n in graph.nodes}
    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plan-graph" role="img" '
        f'width="{graph.width:.0f}" height="{graph.height:.0f}" '
        f'viewBox="0 0 {graph.width:.0f} {graph.height:.0f}" '
        f'data-order-source="{escape(graph.order_source)}">',
        "<title>plan dependency graph</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#6b7280"/></marker></defs>',
    ]
    for src, dst in graph.edges:
        a, b = by_name[src], by_name[dst]
        x1, y1, x2, y2 = a.x + W, a.y + H / 2, b.x, b.y + H / 2
        mid = (x1 + x2) / 2
        parts.append(
            f'<path class="edge" data-from="{escape(src)}" data-to="{escape(dst)}" '
            f'd="M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}" '
            f'fill="none" stroke="#6b7280" stroke-width="1.5" marker-end="url(#arrow)"/>')
    for n in graph.nodes:
        fill = STATUS_COLOURS.get(n.status, "#ffffff")
        label = n.name if len(n.name) <= 22 else n.name[:21] + "…"
        order = "" if n.comp_order is None else str(n.comp_order)
        parts.append(
            f'<g class="step" data-step="{escape(n.name)}" data-status="{escape(n.status)}" '
            f'data-comp-order="{order}">'
            f"<title>{escape(n.name)}: {escape(n.status)} ({escape(n.reversibility)})</title>"
            f'<rect x="{n.x:.1f}" y="{n.y:.1f}" width="{W}" height="{H}" rx="6" '
            f'fill="{fill}" stroke="#374151"/>'
            f'<text x="{n.x + 10:.1f}" y="{n.y + 21:.1f}" font-size="13" '
            f'font-family="sans-serif" font-weight="600">{escape(label)}</text>'
            f'<text x="{n.x + 10:.1f}" y="{n.y + 40:.1f}" font-size="11" '
            f'font-family="sans-serif" fill="#374151">{escape(n.status)}</text>')
        if n.comp_order is not None:
            cx, cy = n.x + W - 4, n.y + 4
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="11" fill="#1d4ed8"/>'
                f'<text x="{cx:.1f}" y="{cy + 4:.1f}" font-size="11" text-anchor="middle" '
                f'font-family="sans-serif" fill="#ffffff">↺{n.comp_order}</text>')
        parts.append("</g>")
    parts.append(
        f'<text x="{MARGIN}" y="{graph.height - 4:.0f}" font-size="11" font-family="sans-serif" '
        f'fill="#4b5563">↺n: compensation order, {escape(graph.order_source)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def legend() -> list[dict[str, Any]]:
    """Status colours, for the page's legend."""
    return [{"status": str(k), "colour": v} for k, v in STATUS_COLOURS.items()]
