"""``reversa mcp`` refuses a bad configuration with one line, before serving anything."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from reversa import Inspector
from reversa.mcp import token_digest
from tests.core.clirun import cli, one_error_line
from tests.mcp.harness import server_env, stdio_session

ROOT = Path(__file__).resolve().parents[2]
TINY = "tests.mcp.tinyapp:catalog"


@pytest.fixture
def policies(tmp_path: Path) -> dict[str, Path]:
    texts = {
        "two": "[agents.a]\nworkflows = ['*']\n[agents.b]\nworkflows = ['*']\n",
        "tokenless": "[agents.a]\nworkflows = ['*']\n",
        "token": f"[agents.a]\ntoken_sha256 = '{token_digest('t')}'\nworkflows = ['*']\n",
    }
    out = {}
    for name, text in texts.items():
        out[name] = tmp_path / f"{name}.toml"
        out[name].write_text(text)
    return out


def refused(tmp_path: Path, *args: str) -> str:
    proc = cli("mcp", "--db", str(tmp_path / "r.db"), *args, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "r.db").exists()  # refused before the store was opened
    return one_error_line(proc)


def test_the_catalog_must_be_a_catalog(tmp_path: Path, policies: dict[str, Path]) -> None:
    two = ("--agent-policy", str(policies["two"]))
    assert "is a Registry and reversa.demos.payments defines no Saga at its top level" in \
        refused(tmp_path, "--app", "reversa.demos.payments:registry", *two)
    assert "is not a reversa.mcp.Catalog" in refused(
        tmp_path, "--app", "tests.mcp.tinyapp:NOT_A_CATALOG", *two)


def test_a_policy_is_required_and_checked(tmp_path: Path, policies: dict[str, Path]) -> None:
    assert refused(tmp_path, "--app", TINY) == (
        "error: --agent-policy is required with --app: agents need identities and limits (see "
        "docs/agents.md)")
    two = ("--agent-policy", str(policies["two"]))
    assert "defines several agents; say which one this stdio connection speaks for with " \
           "--agent (a, b)" in refused(tmp_path, "--app", TINY, *two)
    assert "defines no agent 'c' (agents: a, b)" in refused(
        tmp_path, "--app", TINY, "--agent-policy", str(policies["two"]), "--agent", "c")
    assert "gives no agent a token_sha256, so over HTTP no request could be authenticated" in \
        refused(tmp_path, "--app", TINY, "--agent-policy", str(policies["tokenless"]),
                "--transport", "http")


def test_a_missing_governance_policy_is_one_line(tmp_path: Path,
                                                 policies: dict[str, Path]) -> None:
    assert refused(tmp_path, "--app", TINY, "--agent-policy", str(policies["token"]),
                   "--policy", str(tmp_path / "nope.toml")) == (
        f"error: no policy file at {tmp_path / 'nope.toml'}; check the path")


def test_a_port_in_use_is_one_line(tmp_path: Path, policies: dict[str, Path]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert refused(tmp_path, "--app", TINY, "--agent-policy", str(policies["token"]),
                       "--transport", "http", "--port", str(port)) == (
            f"error: cannot listen on 127.0.0.1:{port}: Address already in use; choose "
            "another --port (or --host), or stop what holds it")


def test_the_demo_over_http_gets_a_fresh_token() -> None:
    from reversa.cli.mcp import Transport, _policy

    rules, shown = _policy(None, None, Transport.HTTP)
    assert shown is not None
    name, token = shown
    agent = rules.by_token(token)
    assert agent is not None and agent.name == name == "demo-agent"
    assert _policy(None, None, Transport.HTTP)[1] != shown  # fresh each start
    assert _policy(None, None, Transport.STDIO)[1] is None  # stdio needs none


def test_services_replace_the_catalogs_over_stdio(tmp_path: Path,
                                                  policies: dict[str, Path]) -> None:
    db = f"sqlite:///{tmp_path}/tiny.db"
    session = stdio_session(["--app", TINY, "--services", "tests.mcp.tinyapp:services",
                             "--agent-policy", str(policies["token"]), "--db", db], server_env({}))
    try:
        started = session.ok("start_saga", {"workflow": "tiny.note", "input": {"text": "hi"}})
        status = session.wait_finished(started["saga_id"])
    finally:
        session.close()
    assert status["status"] == "completed"
    assert status["steps"][0]["result"] == {"noted": "hi", "stamp": "from --services"}
    with Inspector.open(db) as inspector:
        assert inspector.record(started["saga_id"]).status == "completed"


def test_a_registry_serves_the_sagas_of_its_module(tmp_path: Path,
                                                   policies: dict[str, Path]) -> None:
    # The worker's form, --app mod:registry: the workflows are the module's sagas.
    db = f"sqlite:///{tmp_path}/reg.db"
    session = stdio_session(["--app", "tests.mcp.tinyapp:registry",
                             "--services", "tests.mcp.tinyapp:services",
                             "--agent-policy", str(policies["token"]), "--db", db],
                            server_env({}))
    try:
        listed = session.ok("list_workflows", {})
        started = session.ok("start_saga", {"workflow": "tiny.note", "input": {"text": "yo"}})
        status = session.wait_finished(started["saga_id"])
    finally:
        session.close()
    assert [w["name"] for w in listed["workflows"]] == ["tiny.note"]
    assert status["status"] == "completed"
    assert status["steps"][0]["result"] == {"noted": "yo", "stamp": "from --services"}
