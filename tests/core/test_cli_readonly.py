"""Inspecting commands never create or change a database, and print all of it when piped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reversa import Engine, FakeClock, Store, TransientError
from reversa.core.store import MIGRATIONS, schema_version
from tests.core.clirun import cli, one_error_line
from tests.core.kit import FAST, World, chain_saga, reject, transfer_registry

READERS = [("sagas", "list"), ("sagas", "show", "abc"), ("escalations", "list"),
           ("escalations", "show", "1"), ("audit", "verify"), ("dry-run", "abc")]
# Every reader opens the store the same way (shown above for all of them); two suffice
# for the schema checks on both backends.
SOME_READERS = [("escalations", "list"), ("dry-run", "abc")]


@pytest.mark.parametrize("command", READERS, ids=lambda c: " ".join(c))
def test_a_mistyped_path_creates_nothing_and_fails(command: tuple[str, ...],
                                                   tmp_path: Path) -> None:
    proc = cli(*command, "--db", str(tmp_path / "typo.db"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "check --db / REVERSA_DB" in one_error_line(proc)
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_the_default_database_is_not_created_either(tmp_path: Path) -> None:
    proc = cli("audit", "verify", cwd=tmp_path)  # ./reversa.db by default
    assert proc.returncode == 2 and "reversa.db" in one_error_line(proc)
    assert list(tmp_path.iterdir()) == []


def test_a_database_without_the_schema_is_left_alone(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).touch()
    for command in SOME_READERS:
        proc = cli(*command, "--db", db_url)
        assert proc.returncode == 2, command
        assert "no Reversa schema" in one_error_line(proc)
    if db_url.startswith("sqlite"):
        assert Path(db_url.removeprefix("sqlite:///")).stat().st_size == 0
    store = Store.open(db_url, migrate=False)
    with store.engine.connect() as conn:
        assert schema_version(conn) == 0
    store.close()


def test_an_older_schema_is_reported_not_migrated(db_url: str) -> None:
    store = Store.open(db_url, migrate=False)
    store.migrate(target=len(MIGRATIONS) - 1)
    for command in SOME_READERS:
        proc = cli(*command, "--db", db_url)
        assert proc.returncode == 3, command
        assert "run `reversa db-upgrade`" in one_error_line(proc)
    with store.engine.connect() as conn:
        assert schema_version(conn) == len(MIGRATIONS) - 1
    upgraded = cli("db-upgrade", "--db", db_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert cli("sagas", "list", "--db", db_url, "--json").stdout.strip() == "[]"
    store.close()


def _records(db_url: str) -> dict[str, str]:
    """Sagas with ids sharing prefixes, and an escalation whose reason is long."""
    store = Store.open(db_url)
    world = World()
    world.fail["do:credit"] = reject()
    engine = Engine(transfer_registry(world), store, clock=FakeClock(), heartbeat=False)
    ids = {"a": "feed" + "0" * 28, "b": "feed" + "1" * 28}
    for sid in ids.values():
        engine.run(chain_saga(), saga_id=sid)
    long_failure = "the FX desk refused the reversal: " + "limit exceeded; " * 12 + "END"
    world.fail["undo:convert"] = [TransientError(long_failure)] * FAST.max_attempts
    ids["stuck"] = engine.run(chain_saga()).saga_id
    engine.close()
    store.close()
    return ids


def test_show_accepts_a_unique_prefix(db_url: str) -> None:
    ids = _records(db_url)
    shown = cli("sagas", "show", "feed1", "--db", db_url, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == ids["b"]
    ambiguous = cli("sagas", "show", "feed", "--db", db_url)
    assert ambiguous.returncode == 2
    assert "'feed' matches 2 sagas" in one_error_line(ambiguous)
    missing = cli("sagas", "show", "beef", "--db", db_url)
    assert missing.returncode == 2 and "no saga 'beef'" in one_error_line(missing)


def test_bad_choices_are_usage_errors(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    Store.open(db).close()
    status = cli("sagas", "list", "--status", "bogus", "--db", db)
    assert status.returncode == 2 and "'bogus' is not one of" in one_error_line(status)
    assert status.stdout == ""
    action = cli("escalations", "resolve", "1", "--action", "undo", "--author", "a", "--db", db)
    assert action.returncode == 2 and "'undo' is not one of" in one_error_line(action)
    assert cli("sagas", "list", "--limit", "0", "--db", db).returncode == 2
    ok = cli("sagas", "list", "--status", "escalated", "--status", "compensated", "--db", db,
             "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout) == []


def test_piped_output_is_never_cut(db_url: str) -> None:
    ids = _records(db_url)
    listing = cli("sagas", "list", "--db", db_url)  # stdout is a pipe here
    for sid in ids.values():
        assert sid in listing.stdout
    escalations = cli("escalations", "list", "--db", db_url)
    # The whole reason, on the one line of its row: neither cut nor wrapped.
    (row,) = [line for line in escalations.stdout.splitlines() if ids["stuck"] in line]
    assert "the FX desk refused" in row and "limit exceeded; " * 3 in row and "END" in row
    shown = cli("sagas", "show", ids["stuck"], "--db", db_url)
    assert any("the FX desk refused" in line and "END" in line
               for line in shown.stdout.splitlines())
