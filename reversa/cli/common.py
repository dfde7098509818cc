"""Shared CLI plumbing: store opening, registry loading, JSON/rich output."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from ..core.errors import ConfigError, ReversaError
from ..core.registry import Registry
from ..core.store import Store, resolve_url

console = Console(stderr=False)
err_console = Console(stderr=True)

DB_HELP = "Database: SQLite path or postgresql:// URL (default $REVERSA_DB or ./reversa.db)."
APP_HELP = ("Registry to load handlers from, as 'package.module:attribute' (repeatable). "
            "Needed to execute or dry-run compensations of your own workflows.")


def open_store(db: str | None) -> Store:
    """Open the store or exit 2 with a clear message."""
    try:
        return Store.open(db)
    except ReversaError as exc:
        fail(exc.message)
    except Exception as exc:
        fail(f"cannot open database {resolve_url(db)}: {exc}")


def load_registry(apps: Iterable[str], hints: Iterable[str | None] = ()) -> Registry:
    """Import registries named ``module:attr``; built-in ``reversa.*`` hints are trusted.

    Hints come from the stored plan's ``app`` field. Only Reversa's own demo
    registries are imported from a hint; anything else must be passed with
    ``--app`` so a database row can never choose what code this process runs.
    """
    registry = Registry()
    wanted = list(apps) + [h for h in hints if h and h.startswith("reversa.")]
    for spec in dict.fromkeys(wanted):
        module_name, _, attr = spec.partition(":")
        if not attr:
            raise ConfigError(f"--app {spec!r}: use 'package.module:attribute'")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"--app {spec!r}: cannot import {module_name}: {exc}") from exc
        found = getattr(module, attr, None)
        if callable(found) and not isinstance(found, Registry):
            found = found()
        if not isinstance(found, Registry):
            raise ConfigError(f"--app {spec!r}: {attr} is not a reversa.Registry")
        registry = registry.merged(found)
    return registry


def load_services(spec: str) -> dict[str, Any]:
    """Import ``module:factory`` and call it for the services mapping."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ConfigError(f"--services {spec!r}: use 'package.module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--services {spec!r}: cannot load it: {exc}") from exc
    services = factory() if callable(factory) else factory
    if not isinstance(services, dict):
        raise ConfigError(f"--services {spec!r} must return a dict of name -> resource")
    return services


def emit_json(data: Any) -> None:
    """Machine-readable output: JSON on stdout and nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error on stderr and exit."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def ts(value: float | None) -> str:
    """Render an epoch timestamp for humans."""
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def parse_age(text: str | None) -> float | None:
    """``90s``, ``15m``, ``2h``, ``3d`` -> seconds."""
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except (ValueError, IndexError):
        raise typer.BadParameter(
            f"age {text!r}: use a number with s, m, h or d (e.g. 15m)") from None
