"""``reversa sagas show ID --at TIME``: a saga as it was, rebuilt from its log (read-only)."""

from __future__ import annotations

from rich.table import Table

from ..core.inspector import Inspector
from .common import console, emit_json, ts


def show_at(inspector: Inspector, saga_id: str, at: float, json_out: bool) -> None:
    """Print the state of ``saga_id`` at ``at`` (raises NotFound before it existed)."""
    state = inspector.saga_at(saga_id, at)
    if json_out:
        emit_json(state.model_dump(mode="json"))
        return
    console.print(f"[bold]saga {state.id}[/] as of {ts(at)}: workflow={state.workflow} "
                  f"status=[bold]{state.status}[/]")
    console.print(f"rebuilt from {state.entries} of {state.total_entries} log entries "
                  f"(last one at {ts(state.as_of)}); the log alone, not the current rows")
    if state.failed_step:
        console.print(f"failed step: [red]{state.failed_step}[/] — {state.error}")
    table = Table(title=f"steps at {ts(at)}")
    for col in ("#", "step", "status", "attempts", "outcome", "error"):
        table.add_column(col)
    for s in state.steps:
        table.add_row(str(s.position), s.name, s.status.value,
                      f"{s.attempts}/{s.comp_attempts}", s.outcome or "-", s.error or "-")
    console.print(table)
