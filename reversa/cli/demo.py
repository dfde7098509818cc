"""``reversa demo``: real sagas, real failures, governed rollbacks, on the embedded store."""

from __future__ import annotations

import importlib
import io
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..core.engine.inspect import saga_view
from ..core.store import Store, resolve_url
from ..demos.outcome import Demo
from .common import DB_HELP, console, emit_json, fail
from .progress import interactive, phases

# Keyed by the extra that installs what the demo runs on (its domain's simulators).
ADAPTER_DEMOS = {
    "payments-sim": "reversa.demos.payments.demos",
    "evm-sim": "reversa.demos.evm.demos",
    "robot-sim": "reversa.demos.robot.scenarios",
}
DEFAULT = "onboarding"


def scenarios() -> tuple[dict[str, Demo], dict[str, str]]:
    """All demo scenarios, and the adapters whose extra is not installed."""
    from ..demos.run import run_onboarding

    found: dict[str, Demo] = {"onboarding": run_onboarding}
    missing: dict[str, str] = {}
    for extra, module in ADAPTER_DEMOS.items():
        try:
            found.update(importlib.import_module(module).DEMOS)
        except ImportError as exc:
            missing[extra] = str(exc)
    return found, missing


def register(app: typer.Typer) -> None:
    """Attach the demo command."""

    @app.command("demo")
    def demo(
        name: Annotated[str, typer.Argument(help="Scenario to run (see --list).")] = DEFAULT,
        list_: Annotated[bool, typer.Option("--list", help="Name the scenarios.")] = False,
        db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
        json_out: Annotated[bool, typer.Option(
            "--json", help="JSON summary on stdout instead of the narrative.")] = False,
    ) -> None:
        """Run a multi-step saga, inject a failure and show the governed rollback."""
        found, missing = scenarios()
        if list_ and json_out:
            emit_json({"scenarios": {k: (v.__doc__ or "").strip().splitlines()[0]
                                     for k, v in sorted(found.items())},
                       "unavailable": missing})
            return
        if list_:
            table = Table(title="demo scenarios")
            table.add_column("name")
            table.add_column("what it shows")
            for key, fn in sorted(found.items()):
                table.add_row(key, (fn.__doc__ or "").strip().splitlines()[0])
            for extra, why in sorted(missing.items()):
                # escape(): "[payments]" is text here, not rich markup.
                table.add_row(f"({extra})", escape(f"install with: pip install "
                                                   f"'reversa[{extra}]' ({why})"))
            console.print(table)
            return
        if name not in found:
            hint = ", ".join(sorted(found))
            fail(f"no demo scenario {name!r}; choose one of: {hint} (reversa demo --list)")
        url = resolve_url(db)
        if not json_out:
            # The narrative prints through the same console, above the spinner.
            with phases(interactive(json_out), console) as progress:
                progress.start(f"demo {name}")
                run = found[name](url, console)
            raise typer.Exit(run.code)
        run = found[name](url, Console(file=io.StringIO(), width=120))
        store = Store.open(url)
        try:
            # Exactly the sagas this run started: other runs may share the database.
            views = [saga_view(store, sid) for sid in run.saga_ids]
            audit_ok = all(store.verify_audit(sid).ok for sid in run.saga_ids)
            shown = store.url
        finally:
            store.close()
        emit_json({
            "scenario": name, "exit_code": run.code, "db": shown, "audit_ok": audit_ok,
            "sagas": [{"id": v.id, "workflow": v.workflow, "status": v.status.value,
                       "failed_step": v.failed_step,
                       "rollbacks": [r.model_dump(mode="json") for r in v.rollbacks],
                       "escalations": [e.id for e in v.escalations]} for v in views]})
        raise typer.Exit(run.code)
