"""One MCP server per transport and backend, shared by a module's tests.

The bank the served workflows act on runs here, in the test process, behind its
HTTP API; the server (a subprocess, started as a user starts it) reaches it over
loopback, so tests read the bank's counters directly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reversa.demos.payments import PaymentsWorld, build_world, cross_border
from reversa.mcp import token_digest
from tests.mcp.harness import HttpServer, Session, server_env, stdio_session
from tests.support import pg

pytest.importorskip("mcp", reason="the MCP tests need the mcp extra")

BOT_TOKEN = "bot-" + uuid.uuid4().hex
READER_TOKEN = "reader-" + uuid.uuid4().hex

POLICY = f"""
[agents.payments-bot]
token_sha256 = "{token_digest(BOT_TOKEN)}"
workflows = ["payments.ag166c.cross_border", "test.vault", "test.gated", "test.costly"]
max_value = {{ GBP = 250000 }}
approval_above = {{ GBP = 150000 }}
max_rollback_cost = {{ GBP = 2000 }}
may_request_rollback = true

[agents.reader]
token_sha256 = "{token_digest(READER_TOKEN)}"
workflows = ["payments.ag166c.cross_border"]
max_value = {{ GBP = 1000 }}
"""

# The operator's four-eyes rules (reversa approvals' --policy): a rollback of a
# payment of GBP 50,000 or more needs a second person, whoever asks for it.
GOVERNANCE = """
[four_eyes."payments.ag166c.cross_border"]
min_value = { "*" = 50000 }
"""


@dataclass
class Served:
    """A running server, the agent session on it, and what it acts on."""

    transport: str
    db: str
    bank: PaymentsWorld
    session: Session
    http: HttpServer | None
    gates: Path

    def open_gate(self, saga_id: str) -> None:
        """Let a ``test.gated`` saga's held step finish."""
        (self.gates / saga_id).touch()

    def as_reader(self) -> Session:
        """A second agent's session (HTTP: its own token; stdio: its own process)."""
        if self.http is not None:
            return self.http.session(READER_TOKEN)
        raise AssertionError("stdio sessions speak for one agent")


def _database(request: pytest.FixtureRequest, backend: str, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp}/reversa.db"
    server: pg.PgServer = request.getfixturevalue("pg_server")
    return server.create_database("mcp_" + uuid.uuid4().hex[:12])


@pytest.fixture(scope="module", params=["stdio-sqlite", "http-sqlite", "http-postgres"])
def served(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``reversa mcp`` over one transport and backend, with the payments agent connected.

    Each server acts on its own bank: the payments one server's tests make (a
    GBP 200,000 one among them) would otherwise drain the customer's account for
    the next.
    """
    from reversa.simulators.ledger.http import start_server

    world = build_world(sanctioned=(cross_border.SANCTIONED,))
    with start_server(world.ledger, world.venue) as bank:
        yield from _serve(request, world, bank.url, tmp_path_factory)


def _serve(request: pytest.FixtureRequest, world: PaymentsWorld, url: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    transport, backend = request.param.split("-")
    tmp = tmp_path_factory.mktemp(request.param)
    db = _database(request, backend, tmp)
    policy = tmp / "policy.toml"
    policy.write_text(POLICY)
    governance = tmp / "governance.toml"
    governance.write_text(GOVERNANCE)
    gates = tmp / "gates"
    gates.mkdir()
    env = server_env({"REVERSA_TEST_BANK": url, "REVERSA_TEST_GATES": str(gates)})
    args = ["--app", "tests.mcp.app:catalog", "--agent-policy", str(policy),
            "--policy", str(governance), "--db", db]
    if transport == "stdio":
        session = stdio_session([*args, "--agent", "payments-bot"], env)
        yield Served(transport, db, world, session, None, gates)
        session.close()
        return
    http = HttpServer(args, env, tmp / "server.log")
    try:
        session = http.session(BOT_TOKEN)
        yield Served(transport, db, world, session, http, gates)
        session.close()
    finally:
        http.stop()
