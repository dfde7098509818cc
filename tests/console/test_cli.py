"""``reversa users`` and ``reversa console`` as an administrator types them.

Each command runs as its own process, as a user runs it; what they write is then
checked through the console app on the same database.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

from reversa import Store
from reversa.cli.common import ExitCode
from reversa.console import create_app
from reversa.console.accounts import Accounts
from tests.console.conftest import PASSWORD, Api
from tests.core.clirun import CLI, cli, one_error_line


def _stdin(*args: str, text: str) -> subprocess.CompletedProcess[str]:
    root = str(Path(__file__).resolve().parents[2])
    env = {k: v for k, v in os.environ.items() if k != "REVERSA_DB"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return subprocess.run([*CLI, *args], input=text, capture_output=True, text=True,
                          timeout=300, env=env)


def test_users_add_list_token_and_revoke(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/r.db"
    added = _stdin("users", "add", "olga", "--role", "operator", "--password-stdin",
                   "--db", db, text=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "user olga added with role operator" in added.stdout
    listed = cli("users", "list", "--json", "--db", db)
    assert [(u["name"], u["role"], u["disabled"]) for u in json.loads(listed.stdout)] == [
        ("olga", "operator", False)]

    issued = cli("users", "token", "olga", "--label", "ci", "--db", db)
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert len(issued.stdout.splitlines()) == 1 and "not shown again" in issued.stderr
    listed_tokens = cli("users", "tokens", "--json", "--db", db)
    (entry,) = json.loads(listed_tokens.stdout)
    assert token not in listed_tokens.stdout  # the secret is never listed
    store = Store.open(db)
    try:
        app = create_app(store)
        machine = Api(app, token)
        try:
            me = machine.get("/api/me")
            assert me.status_code == 200 and me.json()["identity"] == "user:olga"
            assert cli("users", "revoke-token", entry["id"], "--db", db).returncode == 0
            assert machine.get("/api/me").status_code == 401
        finally:
            machine.close()
        person = Api(app)
        try:
            assert person.login("olga").status_code == 303  # the password piped in works
        finally:
            person.close()
    finally:
        store.close()


def test_users_bad_input_is_one_line_and_records_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/r.db"
    cases = [
        (("users", "add", "olga", "--role", "boss", "--password-stdin"), PASSWORD,
         "unknown role 'boss'"),
        (("users", "add", "Olga Smith", "--role", "viewer", "--password-stdin"), PASSWORD,
         "user name 'Olga Smith'"),
        (("users", "add", "olga", "--role", "viewer", "--password-stdin"), "short",
         "password is too short"),
        (("users", "add", "olga", "--role", "viewer", "--password-stdin"), "",
         "standard input is empty"),
        (("users", "disable", "nobody"), "", "nobody"),
    ]
    for args, text, expected in cases:
        proc = _stdin(*args, "--db", db, text=text + "\n" if text else "")
        assert proc.returncode == ExitCode.USAGE, (args, proc.stderr)
        assert expected in one_error_line(proc), proc.stderr
        assert PASSWORD not in proc.stderr
    store = Store.open(db)
    try:
        assert Accounts(store, clock=time.time).users() == []
    finally:
        store.close()


def test_console_refuses_a_bad_policy_keys_and_a_taken_port(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/r.db"
    missing = cli("console", "--db", db, "--policy", str(tmp_path / "nope.toml"))
    assert missing.returncode == ExitCode.USAGE
    assert "no policy file at" in one_error_line(missing)
    bad = tmp_path / "policy.toml"
    bad.write_text("[four_eyes.payments]\nmin_value = 12\n")
    wrong = cli("console", "--db", db, "--policy", str(bad))
    assert wrong.returncode == ExitCode.USAGE
    assert "[four_eyes.payments] min_value" in one_error_line(wrong)
    nokey = cli("console", "--db", db, "--pubkey", str(tmp_path / "reversa-audit.pub"))
    assert nokey.returncode == ExitCode.USAGE
    assert "reversa-audit.pub" in one_error_line(nokey)
    nowitness = cli("console", "--db", db, "--witness", str(tmp_path / "witness"))
    assert nowitness.returncode == ExitCode.USAGE
    assert "witness directory" in one_error_line(nowitness)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = cli("console", "--db", db, "--port", str(port))
    assert busy.returncode == ExitCode.USAGE
    assert f"cannot listen on 127.0.0.1:{port}" in one_error_line(busy)
