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
import logging
import sys
import time
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

log = logging.getLogger("reversa.cli")

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
    "report_pending",
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


# A server that refuses connections for now (restarting, starting up, failing over) says
# so in these words (PostgreSQL's 57P03 and the socket errors under it); a wrong
# password, a missing database or a typo in the URL says something else and fails at once.
_FOR_NOW = ("shutting down", "starting up", "in recovery", "not yet accepting",
            "connection refused", "could not connect", "server closed the connection",
            "connection reset", "timeout expired", "terminating connection",
            "no route to host")


def unreachable_for_now(exc: BaseException) -> bool:
    """Whether opening the store failed only because the server cannot be reached *now*."""
    if not isinstance(exc, StoreError) or not exc.retryable:
        return False
    text = str(exc.__cause__ or exc).lower()
    return any(words in text for words in _FOR_NOW)


def open_store(db: str | None, *, read_only: bool = False, wait_s: float = 0.0) -> Store:
    """Open the store or exit with one line naming the problem and the fix.

    ``read_only`` (inspecting commands) never creates a file, a schema or a
    migration: a missing or outdated database is an error instead. ``wait_s``
    (long-running services: the worker, the console) keeps trying a server that is
    unreachable for now (a restart, a container still starting) for that long,
    saying so on stderr; every other problem fails at once.
    """
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        try:
            return Store.open(db, read_only=read_only)
        except ReversaError as exc:
            if time.monotonic() < deadline and unreachable_for_now(exc):
                if not said:
                    log.warning("database unreachable for now, retrying for up to %gs: %s",
                                wait_s, exc.message,
                                extra={"event": "db_wait", "saga": None,
                                       "fields": {"wait_s": wait_s}})
                    said = True
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
                continue
            fail(exc.message, exit_code_for(exc))
        except Exception as exc:
            fail(f"cannot open database {resolve_url(db)}: {exc}", ExitCode.STORE)


def open_inspector(db: str | None) -> Inspector:
    """A read-only :class:`Inspector` on ``db``, or exit with one line."""
    return Inspector(open_store(db, read_only=True))


def report_pending(approval: Any, what: str, json_out: bool) -> None:
    """Say that ``what`` (a rollback, a resolution) waits for a second person's approval."""
    if json_out:
        emit_json({"approval": approval.model_dump(mode="json")})
        return
    console.print(f"four-eyes: {what} waits for approval #{approval.id} ({approval.reason}); "
                  f"another identity approves it with `reversa approvals approve "
                  f"{approval.id} --by NAME`")


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


def parse_time(text: str) -> float:
    """``2024-05-01T12:00:00Z`` (ISO 8601; no offset means UTC) or epoch seconds -> epoch."""
    try:
        value = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise typer.BadParameter(
                f"time {text!r}: use ISO 8601 (e.g. 2024-05-01T12:00:00Z) or epoch "
                "seconds") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        value = moment.timestamp()
    if not value == value or value < 0:  # NaN, or before the epoch
        raise typer.BadParameter(f"time {text!r}: give a moment after 1970-01-01")
    return value
