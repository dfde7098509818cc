"""A database password never comes back: not in errors, output, JSON or --help."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.core.clirun import cli, one_error_line
from tests.support import pg

CLOSED = "postgresql://u:secret@127.0.0.1:1/x"

EVERY_DB_COMMAND = [
    ("sagas", "list"), ("sagas", "show", "abc"), ("escalations", "list"),
    ("escalations", "show", "1"), ("audit", "verify"), ("dry-run", "abc"),
    ("escalations", "resolve", "1", "--action", "mark_resolved", "--author", "a"),
    ("db-upgrade",), ("worker", "--once"), ("demo",), ("bench", "--sagas", "2", "--steps", "2"),
]


@pytest.mark.parametrize("command", EVERY_DB_COMMAND, ids=lambda c: " ".join(c[:2]))
def test_unreachable_postgres_is_one_masked_line(command: tuple[str, ...]) -> None:
    proc = cli(*command, "--db", CLOSED)
    assert proc.returncode == 3, proc.stderr
    line = one_error_line(proc)  # one line: no psycopg line breaks, no SQLAlchemy link
    assert "u:***@127.0.0.1:1/x" in line and "Connection refused" in line
    assert "secret" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("command", [c[:2] if c[0] in {"sagas", "escalations", "audit"}
                                     else c[:1] for c in EVERY_DB_COMMAND],
                         ids=lambda c: " ".join(c))
def test_help_never_shows_the_password(command: tuple[str, ...]) -> None:
    proc = cli(*command, "--help", env={"REVERSA_DB": CLOSED})
    assert proc.returncode == 0 and "--db" in proc.stdout
    assert "secret" not in proc.stdout + proc.stderr


def test_output_and_json_name_the_database_masked(pg_server: pg.PgServer) -> None:
    # The throwaway server trusts local connections, so a password in the URL is
    # accepted and ignored: every command really runs with it.
    name = "s_" + uuid.uuid4().hex[:12]
    pg_server.create_database(name)
    url = f"postgresql://reversa:secret@127.0.0.1:{pg_server.port}/{name}"
    outputs = [cli("db-upgrade", "--db", url), cli("demo", "--db", url, "--json"),
               cli("sagas", "list", "--db", url), cli("audit", "verify", "--db", url),
               cli("sagas", "list", "--db", url, "--json"),
               cli("escalations", "list", "--all", "--db", url)]
    for proc in outputs:
        assert proc.returncode == 0, proc.stderr
        assert "secret" not in proc.stdout + proc.stderr
    assert json.loads(outputs[1].stdout)["db"].startswith("postgresql+psycopg://reversa:***@")
    assert "reversa:***@" in outputs[2].stdout and "reversa:***@" in outputs[3].stdout
