"""``reversa mcp``: serve Reversa's agent tools over the Model Context Protocol."""

from __future__ import annotations

import logging
import secrets
import socket
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..core.errors import ConfigError, ReversaError
from .apps import call_factory, load_attr
from .common import DB_HELP, fail, load_services, open_store
from .governance import Policy as GovernancePolicy
from .governance import load_governance
from .logs import LogFormat, configure_logging

if TYPE_CHECKING:
    from ..mcp import Catalog, Policy
    from ..mcp.policy import AgentPolicy

log = logging.getLogger("reversa.mcp")


class Transport(StrEnum):
    """``--transport`` choices."""

    STDIO = "stdio"
    HTTP = "http"


def register(app: typer.Typer) -> None:
    """Attach the mcp command."""

    @app.command("mcp")
    def mcp(
        app_: Annotated[str | None, typer.Option(
            "--app", help="Catalog to serve, as 'package.module:catalog' (a reversa.mcp."
                          "Catalog, or a function returning one: registry, services and the "
                          "workflows agents may start). Default: the bundled demo workflows.")]
        = None,
        services: Annotated[str | None, typer.Option(
            help="'package.module:factory' returning the services handed to handlers "
                 "(replaces the catalog's).")] = None,
        db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
        agent_policy: Annotated[str | None, typer.Option(
            "--agent-policy",
            help="Per-agent policy file (TOML: identities, allowed workflows, limits). "
                 "Required with --app; the demo has a built-in one.")] = None,
        policy: GovernancePolicy = None,
        transport: Annotated[Transport, typer.Option(
            case_sensitive=False, help="stdio (the client starts this process) or http "
                                       "(streamable HTTP, bearer tokens).")] = Transport.STDIO,
        agent: Annotated[str | None, typer.Option(
            help="stdio: the agent this connection speaks for (default: the policy's only "
                 "agent).")] = None,
        host: Annotated[str, typer.Option(help="http: address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535, help="http: port.")] = 8765,
    ) -> None:
        """Serve the agent tools (list, preview, start, watch sagas; read escalations).

        Governance is enforced here: each agent's identity is recorded in the audit
        chain of what it starts or requests, its policy's limits apply, and no tool
        resolves escalations, approves, edits plans or changes policy.
        """
        try:
            catalog = _catalog(app_)
            if services:
                catalog.services = load_services(services)
            rules, demo_token = _policy(agent_policy, app_, transport)
            speaker = _speaker(rules, agent) if transport is Transport.STDIO else None
        except ReversaError as exc:
            fail(exc.message)
        # The four-eyes rules every engine applies: a rollback an agent requests of a
        # saga they cover waits for a second person, as an operator's would.
        governance = load_governance(policy)
        # Configuration first: a mistake is reported without paying for the SDK's import.
        try:
            from ..mcp.desk import Desk
            from ..mcp.redact import Redactor
            from ..mcp.runner import SagaRunner
            from ..mcp.server import ReversaMcp
        except ImportError as exc:
            fail(f"the MCP server needs the mcp extra ({exc}); install it with "
                 "pip install 'reversa[mcp]'")
        sock = _bind(host, port) if transport is Transport.HTTP else None
        configure_logging(LogFormat.TEXT)
        store = open_store(db)
        runner = SagaRunner(catalog, store, catalog.services, governance=governance)
        redactor = Redactor(catalog.services)
        server = ReversaMcp(Desk(catalog, store, runner, redactor), rules, redactor,
                            stdio_agent=speaker)
        runner.start_polling()
        try:
            import anyio

            if transport is Transport.STDIO:
                log.info("serving %d workflow(s) over stdio for agent %s (db %s)",
                         len(catalog.names), speaker.name if speaker else "-", store.url)
                anyio.run(server.run_stdio)
            else:
                if demo_token:
                    sys.stderr.write(f"demo bearer token (agent {demo_token[0]}): "
                                     f"{demo_token[1]}\n")
                log.info("serving %d workflow(s) on http://%s:%d/mcp (db %s)",
                         len(catalog.names), host, port, store.url)
                assert sock is not None
                anyio.run(server.run_http, sock)
        finally:
            runner.close()
            store.close()


def _bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
             "(or --host), or stop what holds it")
    return sock


def _catalog(spec: str | None) -> Catalog:
    from ..core.registry import Registry
    from ..mcp import Catalog

    if spec is None:
        from ..mcp.demo import catalog

        demo = catalog()
        if not demo.names:
            raise ConfigError("no demo workflows: install a demo's extra, e.g. pip install "
                              "'reversa[payments-sim]', or serve your own with --app")
        return demo
    found: Any = load_attr(spec, "--app", "package.module:catalog")
    if callable(found) and not isinstance(found, Catalog | Registry):
        found = call_factory(spec, "--app", found)
    if isinstance(found, Registry):
        found = _module_catalog(spec, found)
    if not isinstance(found, Catalog):
        raise ConfigError(f"--app {spec!r} is not a reversa.mcp.Catalog (nor a function "
                          "returning one)")
    if not found.names:
        raise ConfigError(f"--app {spec!r} offers no workflows")
    return found


def _module_catalog(spec: str, registry: Any) -> Catalog:
    """A registry names handlers; the workflows agents may start are the sagas beside it.

    ``--app mod:registry`` (the form ``reversa worker`` takes) serves every
    ``Saga`` (or ``reversa.mcp.Workflow``) defined at the top level of ``mod``,
    with the saga's docstring-free default description; a Catalog says more.
    """
    import importlib

    from ..core.model import Saga
    from ..mcp import Catalog, Workflow

    module = importlib.import_module(spec.split(":", 1)[0])
    found: dict[str, Workflow] = {}
    for value in vars(module).values():
        if isinstance(value, Workflow):
            found.setdefault(value.name, value)
        elif isinstance(value, Saga):
            found.setdefault(value.workflow, Workflow(
                value, f"The {value.workflow} workflow of {module.__name__}."))
    if not found:
        raise ConfigError(f"--app {spec!r} is a Registry and {module.__name__} defines no "
                          "Saga at its top level: define the workflows agents may start "
                          "there, or point --app at a reversa.mcp.Catalog (see docs/agents.md)")
    return Catalog(registry, found.values())


def _policy(path: str | None, app: str | None,
            transport: Transport) -> tuple[Policy, tuple[str, str] | None]:
    """The policy, and the demo's generated token when one was needed."""
    from ..mcp import Policy, load_policy, token_digest
    from ..mcp.demo import demo_policy

    if path is not None:
        rules = load_policy(path)
    elif app is not None:
        raise ConfigError("--agent-policy is required with --app: agents need identities and "
                          "limits (see docs/agents.md)")
    else:
        rules = demo_policy()
    if transport is not Transport.HTTP or any(a.token_sha256 for a in rules.agents.values()):
        return rules, None
    if path is not None:
        raise ConfigError(f"{rules.source} gives no agent a token_sha256, so over HTTP no "
                          "request could be authenticated; add one per agent")
    # The demo over HTTP: one fresh token, shown once to the operator who started it.
    token = secrets.token_urlsafe(24)
    agents: list[AgentPolicy] = [a.model_copy(update={"token_sha256": token_digest(token)})
                                 for a in rules.agents.values()]
    return Policy(agents[:1], source=rules.source), (agents[0].name, token)


def _speaker(rules: Policy, name: str | None) -> AgentPolicy:
    if name is not None:
        return rules.agent(name)
    if len(rules.agents) == 1:
        return next(iter(rules.agents.values()))
    raise ConfigError(f"{rules.source} defines several agents; say which one this stdio "
                      f"connection speaks for with --agent ({', '.join(sorted(rules.agents))})")
