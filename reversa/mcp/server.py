"""The MCP server: Reversa's agent tools over stdio or streamable HTTP (official ``mcp`` SDK).

Built on the SDK's low-level :class:`mcp.server.lowlevel.Server` rather than
its decorator layer, so each tool's input schema is exactly a pydantic model of
:mod:`.args` (unknown arguments refused) and a malformed call gets one line
naming each wrong argument. Identity: over stdio the operator names the agent
(``--agent``); over HTTP every request carries a bearer token that the SDK's
bearer middleware checks against the policy's ``token_sha256`` entries (no
token, no answer). The agent's name goes into the audit chain of everything it
starts or requests, as ``agent:<name>``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import mcp.types as types
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ValidationError

from .. import __version__
from ..core.errors import ReversaError
from . import args
from .catalog import describe_errors
from .desk import Desk
from .policy import AgentPolicy, Policy, Refused
from .redact import Redactor

__all__ = ["INSTRUCTIONS", "TOOLS", "ReversaMcp", "Tool"]

log = logging.getLogger("reversa.mcp")

INSTRUCTIONS = """\
Reversa runs multi-step workflows (sagas) that either complete, roll back to a consistent \
state, or go to a human with a full report. Use list_workflows and describe_workflow to see \
what you may start and each step's rollback semantics; preview a start to see whether its \
rollback is feasible and what it would cost (nothing happens); start_saga returns a saga id \
(or pending_approval when your limits need a human); watch it with saga_status and \
saga_timeline. You cannot resolve escalations, approve starts, edit plans or change your \
limits: humans do that."""


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool: its arguments model, what it does, and whether it changes anything."""

    name: str
    model: type[BaseModel]
    description: str
    read_only: bool
    destructive: bool = False


TOOLS: tuple[Tool, ...] = (
    Tool("list_workflows", args.ListWorkflows, "List the workflows you may start, with each "
         "step's reversibility, compensation kind and cost estimator.", True),
    Tool("describe_workflow", args.DescribeWorkflow, "Describe one workflow: its steps and "
         "parameters, rollback policies, the input schema and your limits for it.", True),
    Tool("preview", args.Preview, "Validate a start without starting: check the input, "
         "dry-run the rollback (preconditions, feasibility) and estimate its cost, and say "
         "whether your limits let it start, need a human's approval, or refuse it. Nothing "
         "is recorded and no service is called to change anything.", True),
    Tool("start_saga", args.StartSaga, "Start a workflow. Its plan is recorded before step 1; "
         "returns the saga id at once (watch it with saga_status), or status "
         "pending_approval with an approval id when a human must approve it first. Pass a "
         "request_id to make retries safe.", False),
    Tool("saga_status", args.SagaRef, "A saga's status, its steps' outcomes, its last rollback "
         "(estimated cost, predicate) and its escalations.", True),
    Tool("saga_timeline", args.SagaRef, "A saga's tamper-evident audit chain, entry by entry, "
         "and whether it verifies.", True),
    Tool("request_rollback", args.RequestRollback, "Ask for a running saga (or one completed "
         "within its rollback window) to be rolled back; only if your policy allows it. The "
         "request and your reason are recorded in its audit chain.", False, destructive=True),
    Tool("list_escalations", args.ListEscalations, "List escalations (sagas handed to a human) "
         "of the workflows you may use. Read only: humans resolve them.", True),
)

_SAGA_URI = re.compile(r"^reversa://sagas/(?P<id>[0-9a-f]{1,64})$")
_ESCALATION_URI = re.compile(r"^reversa://escalations/(?P<id>[0-9]{1,18})$")


class ReversaMcp:
    """The MCP server of one catalog, store and policy.

    Args:
        desk: The tools' implementations.
        policy: Agents and their limits.
        redactor: Masks secrets in every output.
        stdio_agent: The agent a stdio connection speaks for (HTTP requests are
            identified by their bearer token instead).
    """

    def __init__(self, desk: Desk, policy: Policy, redactor: Redactor,
                 *, stdio_agent: AgentPolicy | None = None) -> None:
        self.desk = desk
        self.policy = policy
        self.redactor = redactor
        self.stdio_agent = stdio_agent
        self.tools = {t.name: t for t in TOOLS}
        self.server: Server[Any] = Server(
            "reversa", version=__version__, instructions=INSTRUCTIONS,
            get_tool_input_schema=self._schema,
            on_list_tools=self._list_tools, on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_templates,
            on_read_resource=self._read_resource,
        )

    # -- identity -----------------------------------------------------------------------
    def agent(self) -> AgentPolicy:
        """The agent the current request speaks for.

        Raises:
            MCPError: No identity (an HTTP request the bearer middleware let
                through without a token cannot happen; this is the backstop).
        """
        token = get_access_token()
        if token is not None:
            return self.policy.agent(token.client_id)
        if self.stdio_agent is not None:
            return self.stdio_agent
        raise MCPError(code=types.INVALID_REQUEST, message="no agent identity on this request")

    async def verify_token(self, token: str) -> AccessToken | None:
        """The SDK's ``TokenVerifier``: a bearer token names an agent of the policy."""
        agent = self.policy.by_token(token)
        if agent is None:
            log.warning("refused an HTTP request: unknown bearer token")
            return None
        return AccessToken(token=token, client_id=agent.name, scopes=[])

    # -- tools --------------------------------------------------------------------------
    def _schema(self, name: str) -> dict[str, Any] | None:
        tool = self.tools.get(name)
        return None if tool is None else tool.model.model_json_schema()

    async def _list_tools(self, ctx: ServerRequestContext[Any],
                          params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[
            types.Tool(name=t.name, description=t.description,
                       input_schema=t.model.model_json_schema(),
                       annotations=types.ToolAnnotations(
                           read_only_hint=t.read_only, destructive_hint=t.destructive,
                           idempotent_hint=t.read_only, open_world_hint=not t.read_only))
            for t in TOOLS])

    async def _call_tool(self, ctx: ServerRequestContext[Any],
                         params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = self.tools.get(params.name)
        if tool is None:
            return _error(f"unknown tool {params.name!r}; the tools are "
                          f"{', '.join(self.tools)}")
        try:
            parsed = tool.model.model_validate(params.arguments or {})
        except ValidationError as exc:
            return _error(f"malformed arguments for {tool.name}: {describe_errors(exc)}; "
                          "its input schema (tools/list) says what it takes")
        agent = self.agent()
        method: Callable[[AgentPolicy, Any], dict[str, Any]] = getattr(self.desk, tool.name)
        try:
            data = await anyio.to_thread.run_sync(functools.partial(method, agent, parsed))
        except Refused as exc:
            log.info("agent %s: %s refused: %s", agent.name, tool.name, exc.message)
            return _error(f"refused: {self.redactor.text(exc.message)}")
        except ReversaError as exc:
            return _error(self.redactor.text(exc.message))
        except Exception as exc:
            log.exception("tool %s failed for agent %s", tool.name, agent.name)
            return _error(f"internal error in {tool.name} ({type(exc).__name__}); this is a bug "
                          "in Reversa, the server's log has the details")
        if not tool.read_only:
            log.info("agent %s: %s %s -> %s", agent.name, tool.name, data.get("saga_id"),
                     data.get("status"))
        clean = self.redactor.clean(data)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(clean, default=str))],
            structured_content=clean)

    # -- resources ----------------------------------------------------------------------
    async def _list_templates(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=[
            types.ResourceTemplate(
                name="saga", uri_template="reversa://sagas/{id}", mime_type="application/json",
                description="Everything recorded about one saga: plan, steps and attempts, "
                            "rollbacks, escalations."),
            types.ResourceTemplate(
                name="escalation", uri_template="reversa://escalations/{id}",
                mime_type="application/json",
                description="One escalation with its full state report (read only)."),
        ])

    async def _list_resources(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        agent = self.agent()
        found = await self._run(lambda: self.desk.recent(agent))
        return types.ListResourcesResult(resources=[
            types.Resource(uri=uri, name=title, mime_type="application/json")
            for uri, title in found])

    async def _read_resource(self, ctx: ServerRequestContext[Any],
                             params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        agent = self.agent()
        if (m := _SAGA_URI.match(uri)) is not None:
            saga_id = m["id"]
            data = await self._run(lambda: self.desk.saga_resource(agent, saga_id))
        elif (m := _ESCALATION_URI.match(uri)) is not None:
            escalation_id = int(m["id"])
            data = await self._run(lambda: self.desk.escalation_resource(agent, escalation_id))
        else:
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown resource {uri!r}; use "
                           "reversa://sagas/{id} or reversa://escalations/{id}")
        text = json.dumps(self.redactor.clean(data), default=str)
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=uri, text=text, mime_type="application/json")])

    async def _run(self, fn: Callable[[], Any]) -> Any:
        try:
            return await anyio.to_thread.run_sync(fn)
        except ReversaError as exc:
            raise MCPError(code=types.INVALID_PARAMS,
                           message=self.redactor.text(exc.message)) from None

    # -- transports ---------------------------------------------------------------------
    async def run_stdio(self) -> None:
        """Serve one client on this process' stdin/stdout."""
        from mcp.server.stdio import stdio_server

        async with stdio_server() as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())

    async def run_http(self, sock: socket.socket) -> None:
        """Serve streamable HTTP at ``/mcp`` on a bound socket, bearer tokens required.

        The caller binds the socket, so a port in use is its one-line error
        before anything starts (and no other process can take the port meanwhile).
        """
        import uvicorn

        host, port = sock.getsockname()[:2]
        app = self.server.streamable_http_app(
            host=host, token_verifier=self,
            # The SDK's bearer middleware needs auth settings; the issuer is this
            # server (tokens are issued by the operator, out of band).
            auth=AuthSettings(issuer_url=f"http://{host}:{port}",  # type: ignore[arg-type]
                              resource_server_url=None))
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        await uvicorn.Server(config).serve(sockets=[sock])


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=f"error: {message}")],
                                is_error=True)
