"""``reversa sla report``: compensation endpoints measured against their SLAs (read-only)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from .common import DB_HELP, ExitCode, console, emit_json, open_inspector, parse_age


def register(app: typer.Typer) -> None:
    """Attach the ``sla`` commands."""
    sla_app = typer.Typer(no_args_is_help=True,
                          help="Service levels of compensation endpoints.")
    app.add_typer(sla_app, name="sla")

    @sla_app.command("report")
    def sla_report(
        db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
        json_out: Annotated[bool, typer.Option(
            "--json", help="JSON on stdout: one report per endpoint, and the same figures as "
                           "flat metrics (name, labels, value).")] = False,
        since: Annotated[str, typer.Option(
            help="Measure calls made within this long (e.g. 15m, 24h, 7d).")] = "24h",
    ) -> None:
        """Each compensation endpoint's calls against what it promises; exit 1 on a breach."""
        window = parse_age(since)
        assert window is not None
        inspector = open_inspector(db)
        start = time.time() - window
        reports = inspector.sla_report(start)
        breached = [r for r in reports if r.breached]
        if json_out:
            emit_json({"since": start, "endpoints": [r.to_dict() for r in reports],
                       "metrics": [m.to_dict() for m in inspector.sla_metrics(start)],
                       "breaches": [{"endpoint": r.endpoint, "breaches": r.breaches}
                                    for r in breached]})
            raise typer.Exit(ExitCode.CHECK_FAILED if breached else ExitCode.OK)
        table = Table(title=f"compensation endpoints, last {since} ({inspector.url})")
        for col in ("endpoint", "calls", "availability", "promised", "p95 latency", "promised",
                    "breaches"):
            table.add_column(col)
        for r in reports:
            table.add_row(r.endpoint, str(r.calls), f"{r.availability:.3%}",
                          f"{r.promised_availability:.3%}", f"{r.latency_p95_s:.3f}s",
                          f"{r.promised_latency_s:g}s", "; ".join(r.breaches) or "none")
        console.print(table if reports else "no compensation call with a declared SLA in that "
                                            "period")
        raise typer.Exit(ExitCode.CHECK_FAILED if breached else ExitCode.OK)
