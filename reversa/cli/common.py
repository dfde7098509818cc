"""Shared CLI plumbing: exit codes, one-line errors, store opening, registry loading, output.

Conventions every command follows (documented in the README):

- exit codes: 0 success; 1 a check failed (the audit does not verify, a rollback is
  infeasible, a resolution re-escalated, a worker left a saga unfinished); 2 bad input or
  usage (unknown option value, unknown id, missing database file); 3 the store is
  unreachable or unusable (connection refused, schema too old or too new); 70 an internal
  error (a bug: rerun with ``REVERSA_DEBUG=1`` for the traceback); 130 interrupted.
- every error is ONE line on stderr, ``error: <problem>; <fix>``, with passwords masked;
- ``--json`` output goes to stdout and nothing else does;
- output that is not a terminal is never truncated or wrapped.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, NoReturn

import typer
from rich.console import Console

from ..core.errors import (
    AuditError,
    ConfigError,
    IllegalTransition,
    NotFound,
    PlanError,
    ReversaError,
    StoreError,
)
from ..core.inspector import Inspector
from ..core.redact import scrub
from ..core.store import Store, resolve_url
from .apps import load_registry, load_services

__all__ = [
    "APP_HELP",
    "DB_HELP",
    "ExitCode",
    "console",
    "emit_json",
    "err_console",
    "exit_code_for",
    "fail",
    "load_registry",
    "load_services",
    "one_line",
    "open_inspector",
    "open_store",
    "parse_age",
    "ts",
]


class ExitCode(IntEnum):
    """Process exit codes shared by every command."""

    OK = 0
    CHECK_FAILED = 1
    USAGE = 2
    STORE = 3
    INTERNAL = 70
    INTERRUPTED = 130


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    # Piped or redirected: no width to respect, so never cut ids or wrap hints
    # mid-command (rich would assume 80 columns).
    return Console(stderr=stderr, width=100_000, soft_wrap=True, no_color=True,
                   highlight=False)


console = _console(stderr=False)
err_console = _console(stderr=True)

DB_HELP = "Database: SQLite path or postgresql:// URL (default $REVERSA_DB or ./reversa.db)."
APP_HELP = ("Registry to load handlers from, as 'package.module:attribute' (repeatable; "
            "found from the current directory too). Overrides the one the saga recorded.")


def one_line(message: str) -> str:
    """Collapse a message to one line, without library links or passwords."""
    lines = [ln.strip() for ln in str(message).splitlines()]
    # SQLAlchemy appends "(Background on this error at: https://sqlalche.me/...)".
    kept = [ln for ln in lines if ln and not ln.startswith("(Background on this error")]
    text = " ".join(kept)
    cut = text.find("(Background on this error")
    if cut != -1:
        text = text[:cut].rstrip()
    return scrub(text)


def fail(message: str, code: int = ExitCode.USAGE) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with ``code``."""
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    raise typer.Exit(int(code))


def exit_code_for(exc: ReversaError) -> ExitCode:
    """The exit code an uncaught Reversa error ends the process with."""
    if isinstance(exc, NotFound | IllegalTransition):
        return ExitCode.USAGE
    if isinstance(exc, StoreError):
        return ExitCode.STORE
    if isinstance(exc, ConfigError | PlanError):
        return ExitCode.USAGE
    if isinstance(exc, AuditError):
        return ExitCode.CHECK_FAILED
    return ExitCode.CHECK_FAILED


def open_store(db: str | None, *, read_only: bool = False) -> Store:
    """Open the store or exit with one line naming the problem and the fix.

    ``read_only`` (inspecting commands) never creates a file, a schema or a
    migration: a missing or outdated database is an error instead.
    """
    try:
        return Store.open(db, read_only=read_only)
    except ReversaError as exc:
        fail(exc.message, exit_code_for(exc))
    except Exception as exc:
        fail(f"cannot open database {resolve_url(db)}: {exc}", ExitCode.STORE)


def open_inspector(db: str | None) -> Inspector:
    """A read-only :class:`Inspector` on ``db``, or exit with one line."""
    return Inspector(open_store(db, read_only=True))


def emit_json(data: Any) -> None:
    """Machine-readable output: JSON on stdout and nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


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
        value = float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError, KeyError):
        value = -1.0
    if not value >= 0:  # also rejects NaN
        raise typer.BadParameter(
            f"age {text!r}: use a non-negative number with s, m, h or d (e.g. 15m)")
    return value
