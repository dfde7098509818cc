"""Reversa as tools for AI agents, over the Model Context Protocol (extra ``mcp``).

``reversa mcp`` serves a :class:`Catalog` (registry, services, the workflows
agents may start) to MCP clients over stdio or streamable HTTP, under a
per-agent :class:`Policy`. The catalog and policy types need no MCP SDK; the
server itself is in :mod:`reversa.mcp.server`. See ``docs/agents.md``.
"""

from .catalog import Catalog, PreviewCost, Value, Workflow
from .policy import AgentPolicy, Policy, Refused, load_policy, token_digest

__all__ = [
    "Catalog", "Workflow", "Value", "PreviewCost",
    "Policy", "AgentPolicy", "Refused", "load_policy", "token_digest",
]
