"""``reversa demo``: real sagas, real failures, governed rollbacks, on the embedded store."""

from __future__ import annotations

import importlib
import io
import time
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..core.engine.inspect import saga_view
from ..core.store import Store, resolve_url
from .common import DB_HELP, console, emit_json, fail

Demo = Callable[[str, Console], int]

ADAPTER_DEMOS = {
    "payments": "reversa.demos.payments.demos",
    "evm": "reversa.adapters.evm.demos",
    "robot": "reversa.adapters.robot.demos",
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
            raise typer.Exit(found[name](url, console))
        started = time.time()
        code = found[name](url, Console(file=io.StringIO(), width=120))
        store = Store.open(url)
        sagas = [row["id"] for row in store.list_sagas(created_after=started - 1)]
        views = [saga_view(store, sid) for sid in sagas]
        emit_json({
            "scenario": name, "exit_code": code, "db": store.url,
            "audit_ok": store.verify_audit().ok,
            "sagas": [{"id": v.id, "workflow": v.workflow, "status": v.status.value,
                       "failed_step": v.failed_step,
                       "rollbacks": [r.model_dump(mode="json") for r in v.rollbacks],
                       "escalations": [e.id for e in v.escalations]} for v in views]})
        raise typer.Exit(code)
