"""The tools' input schemas: one pydantic model per tool, unknown arguments refused.

The JSON schema an MCP client lists is generated from these models, and every
call is validated against the same model before anything runs, so a malformed
call gets one line naming each wrong argument.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DescribeWorkflow",
    "ListEscalations",
    "ListWorkflows",
    "Preview",
    "RequestRollback",
    "SagaRef",
    "StartSaga",
]

_WORKFLOW = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$",
                  description="Workflow name, as list_workflows gives it.")
_SAGA_ID = Field(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$",
                 description="Saga id (as start_saga returned it), or a unique prefix of it.")
_INPUT: Any = Field(default_factory=dict, description="The workflow's input, matching the "
               "input_schema describe_workflow gives.")


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListWorkflows(_Args):
    """No arguments."""


class DescribeWorkflow(_Args):
    """Which workflow to describe."""

    workflow: str = _WORKFLOW


class Preview(_Args):
    """A workflow and the input it would run on."""

    workflow: str = _WORKFLOW
    input: dict[str, Any] = _INPUT


class StartSaga(_Args):
    """A workflow, its input, and an optional key that makes retries safe."""

    workflow: str = _WORKFLOW
    input: dict[str, Any] = _INPUT
    request_id: str | None = Field(
        default=None, min_length=1, max_length=128,
        description="Your key for this start: calling start_saga again with the same "
                    "request_id returns the saga it started instead of starting another.")


class SagaRef(_Args):
    """One saga."""

    saga_id: str = _SAGA_ID


class RequestRollback(_Args):
    """The saga to roll back, and why."""

    saga_id: str = _SAGA_ID
    reason: str = Field(min_length=3, max_length=500,
                        description="Why it should be rolled back (recorded in its audit chain).")


class ListEscalations(_Args):
    """Which escalations to list."""

    status: Literal["open", "resolved", "all"] = Field(
        default="open", description="open (awaiting a human), resolved, or all.")
    workflow: str | None = Field(default=None, min_length=1, max_length=128,
                                 description="Only this workflow's escalations.")
    limit: int = Field(default=50, ge=1, le=500, description="At most this many, oldest first.")
