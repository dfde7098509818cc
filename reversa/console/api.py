"""The JSON API under ``/api``: everything the console shows and does.

The pages are built on it: each page handler calls these functions and renders
what they return, and each form posts through them, so there is nothing an
operator can see or do in the browser that a machine cannot through ``/api``,
with the same roles checked in the same place. A machine
authenticates with ``Authorization: Bearer <token>`` (``reversa users token
NAME``); a browser session works too, with its CSRF token in ``X-CSRF-Token``
on unsafe requests. The OpenAPI document is ``/api/openapi.json`` (login needed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ..core.governance import Approval
from ..core.views import AuditEntry, EscalationView, SagaResult, SagaSummary, SagaView
from .accounts import ApiToken, Role, User, check_name
from .graph import layout, render_svg
from .service import parse_age
from .web import Forbidden, Principal, needs, state

__all__ = ["metrics_router", "router"]

router = APIRouter(prefix="/api", tags=["api"])
metrics_router = APIRouter(include_in_schema=False)

Viewer = Annotated[Principal, Depends(needs(Role.VIEWER))]
Operator = Annotated[Principal, Depends(needs(Role.OPERATOR))]
Approver = Annotated[Principal, Depends(needs(Role.APPROVER))]
Admin = Annotated[Principal, Depends(needs(Role.ADMIN))]


class Me(BaseModel):
    """The caller."""

    name: str
    role: str
    identity: str = Field(description="How the engine records this user's actions.")


class SagaPageOut(BaseModel):
    """One page of a saga listing."""

    items: list[SagaSummary]
    page: int
    per_page: int
    total: int
    pages: int = Field(description="How many pages the whole listing has (at least 1).")


class ResolveIn(BaseModel):
    """A resolution of an escalation."""

    action: Literal["retry", "forward_recovery", "mark_resolved"]
    note: str = Field("", max_length=4000, description="Why; recorded in the audit chain.")


class ActionOut(BaseModel):
    """What a resolution or a rollback request did: ran (``done``, with the saga's
    result) or waits for a second approver (``pending_approval``, with the approval)."""

    outcome: Literal["done", "pending_approval"]
    result: SagaResult | None = None
    approval: Approval | None = None

    @classmethod
    def of(cls, value: SagaResult | Approval) -> ActionOut:
        """Wrap what the engine returned."""
        if isinstance(value, Approval):
            return cls(outcome="pending_approval", approval=value)
        return cls(outcome="done", result=value)


class RollbackIn(BaseModel):
    """An operator's rollback request."""

    reason: str = Field(min_length=1, max_length=4000,
                        description="Why; recorded in the audit chain.")


class DecisionIn(BaseModel):
    """An approver's verdict (a rejection needs a note)."""

    note: str = Field("", max_length=4000)


class AuditOut(BaseModel):
    """Result of verifying the audit record (as ``reversa audit verify --json``)."""

    ok: bool
    sagas: int
    entries: int
    problems: list[dict[str, Any]]
    checked: list[str] = Field(description="What was verified (chains, tables, "
                               "signatures, witnessed checkpoints).")
    notes: list[str] = Field(description="What could not be verified, and why.")


class UserIn(BaseModel):
    """A new console user."""

    name: str
    role: Literal["viewer", "operator", "approver", "admin"]
    password: str = Field(min_length=10)


class UserOut(BaseModel):
    """A console user."""

    name: str
    role: str
    disabled: bool
    created_at: float

    @classmethod
    def of(cls, user: User) -> UserOut:
        """The user as the API shows it (never its password hash)."""
        return cls(name=user.name, role=user.role.value, disabled=user.disabled,
                   created_at=user.created_at)


class RoleIn(BaseModel):
    """A user's new role."""

    role: Literal["viewer", "operator", "approver", "admin"]


class TokenIn(BaseModel):
    """A new API token."""

    label: str = Field("", max_length=128, description="What the token is for.")


@dataclass(frozen=True)
class IssuedToken(ApiToken):
    """A token just issued: its secret is in this one answer and never again."""

    token: str


class OverviewOut(BaseModel):
    """The console's front page: sagas per status, what waits for a human."""

    counts: dict[str, int] = Field(description="Sagas per status (every status).")
    workflows: list[str] = Field(description="Every workflow recorded.")
    escalations: list[EscalationView] = Field(description="The oldest open escalations.")
    approvals: list[Approval] = Field(description="The oldest pending approvals.")


class SagaDetailOut(SagaView):
    """One saga, with what an operator may still do about it."""

    rollback_window_left_s: float | None = Field(
        description="Seconds left to roll back a completed saga (None: not completed).")
    rollback_requestable: bool = Field(
        description="Whether an operator may ask it to stop and roll back now.")


def check_resolution_role(me: Principal, action: str) -> None:
    """Retrying a rollback is an operator's call; anything else is an approver's."""
    needed = Role.OPERATOR if action == "retry" else Role.APPROVER
    if not me.user.role.includes(needed):
        raise Forbidden(f"user {me.user.name} is {me.user.role.value}; the {action} resolution "
                        f"needs the {needed.value} role")


@router.get("/me", response_model=Me)
def me(principal: Viewer) -> Me:
    """Who the API takes the caller for."""
    user = principal.user
    return Me(name=user.name, role=user.role.value, identity=user.identity)


@router.get("/overview", response_model=OverviewOut)
def overview(request: Request, principal: Viewer,
             limit: Annotated[int, Query(ge=0, le=200)] = 10) -> OverviewOut:
    """Sagas per status, the workflows, the oldest open escalations and approvals."""
    svc = state(request).service
    return OverviewOut(counts=svc.counts(), workflows=svc.workflows(),
                       escalations=svc.escalations("open")[:limit],
                       approvals=svc.approvals("pending")[:limit])


@router.get("/sagas", response_model=SagaPageOut)
def list_sagas(
    request: Request,
    principal: Viewer,
    status: Annotated[list[str] | None, Query()] = None,
    workflow: str | None = None,
    older_than: Annotated[str | None, Query(description="e.g. 15m, 2h, 3d")] = None,
    newer_than: str | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 25,
) -> SagaPageOut:
    """Sagas filtered by status, workflow and age, newest first."""
    st = state(request)
    now = st.clock()
    older, newer = parse_age(older_than), parse_age(newer_than)
    found = st.service.sagas(status=status or [], workflow=workflow,
                             created_before=None if older is None else now - older,
                             created_after=None if newer is None else now - newer,
                             page=page, per_page=per_page)
    return SagaPageOut(items=found.items, page=found.page, per_page=found.per_page,
                       total=found.total, pages=found.pages)


@router.get("/sagas/{saga_id}", response_model=SagaDetailOut)
def get_saga(request: Request, saga_id: str, principal: Viewer) -> SagaDetailOut:
    """Everything recorded about one saga (the id may be a unique prefix)."""
    st = state(request)
    view = st.service.saga(saga_id)
    return SagaDetailOut(
        **dict(view), rollback_window_left_s=st.service.rollback_window_left(view, st.clock()),
        rollback_requestable=view.status.value in ("running", "approved"))


@router.get("/sagas/{saga_id}/audit", response_model=list[AuditEntry])
def saga_audit(request: Request, saga_id: str, principal: Viewer) -> list[AuditEntry]:
    """The saga's audit chain (its timeline), in order."""
    return state(request).service.timeline(saga_id)


@router.get("/sagas/{saga_id}/graph.svg", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}})
def saga_graph(request: Request, saga_id: str, principal: Viewer) -> Response:
    """The plan's dependency graph with each step's state and the compensation order."""
    view = state(request).service.saga(saga_id)
    return Response(render_svg(layout(view)), media_type="image/svg+xml")


@router.get("/escalations", response_model=list[EscalationView])
def list_escalations(
    request: Request, principal: Viewer,
    status: Literal["open", "resolved", "all"] = "open",
) -> list[EscalationView]:
    """Escalations, oldest first."""
    return state(request).service.escalations(None if status == "all" else status)


@router.get("/escalations/{escalation_id}", response_model=EscalationView)
def get_escalation(request: Request, escalation_id: int, principal: Viewer) -> EscalationView:
    """One escalation with its full state report."""
    return state(request).service.escalation(escalation_id)


@router.post("/escalations/{escalation_id}/resolve", response_model=ActionOut)
def resolve(request: Request, escalation_id: int, body: ResolveIn,
            principal: Operator) -> ActionOut:
    """Resolve as the caller: ``retry`` needs operator, the others approver. Under
    four-eyes the resolution waits for a second, distinct approver."""
    check_resolution_role(principal, body.action)
    return ActionOut.of(state(request).service.resolve(principal.user, escalation_id,
                                                       body.action, body.note.strip()))


@router.post("/sagas/{saga_id}/rollback", response_model=ActionOut)
def request_rollback(request: Request, saga_id: str, body: RollbackIn,
                     principal: Operator) -> ActionOut:
    """Stop a running saga and roll it back, or roll back a completed one still within
    its rollback window (operator)."""
    return ActionOut.of(state(request).service.request_rollback(
        principal.user, saga_id, body.reason.strip()))


@router.get("/approvals", response_model=list[Approval])
def list_approvals(
    request: Request, principal: Viewer,
    status: Literal["pending", "approved", "rejected", "executed", "failed", "all"] = "pending",
    kind: Literal["start", "resolution", "rollback"] | None = None,
) -> list[Approval]:
    """Approvals, oldest first."""
    return state(request).service.approvals(None if status == "all" else status, kind)


@router.get("/approvals/{approval_id}", response_model=Approval)
def get_approval(request: Request, approval_id: int, principal: Viewer) -> Approval:
    """One approval with every decision."""
    return state(request).service.approval(approval_id)


@router.post("/approvals/{approval_id}/approve", response_model=Approval)
def approve(request: Request, approval_id: int, body: DecisionIn,
            principal: Approver) -> Approval:
    """Approve as the caller (never your own request, never twice)."""
    return state(request).service.decide(principal.user, approval_id, "approved",
                                         body.note.strip())


@router.post("/approvals/{approval_id}/reject", response_model=Approval)
def reject(request: Request, approval_id: int, body: DecisionIn,
           principal: Approver) -> Approval:
    """Reject as the caller (a note saying why is required)."""
    return state(request).service.decide(principal.user, approval_id, "rejected",
                                         body.note.strip())


@router.get("/audit/verify", response_model=AuditOut)
def verify(request: Request, principal: Viewer, saga: str | None = None) -> AuditOut:
    """Verify the audit record (or one saga's): chains, tables, signatures, witnesses."""
    report = state(request).service.verify_audit(saga)
    return AuditOut(ok=report.ok, sagas=report.sagas, entries=report.entries,
                    problems=[asdict(p) for p in report.problems], checked=report.checked,
                    notes=report.notes)


@router.get("/users", response_model=list[UserOut])
def list_users(request: Request, principal: Admin) -> list[UserOut]:
    """Every console user."""
    return [UserOut.of(u) for u in state(request).accounts.users()]


@router.post("/users", response_model=UserOut, status_code=201)
def add_user(request: Request, body: UserIn, principal: Admin) -> UserOut:
    """Create a console user."""
    return UserOut.of(state(request).accounts.add(check_name(body.name.strip().lower()),
                                                  body.role, body.password))


@router.post("/users/{name}/disable", response_model=UserOut)
def disable_user(request: Request, name: str, principal: Admin) -> UserOut:
    """Disable a user: its sessions end and its tokens stop working (never yourself)."""
    if name == principal.user.name:
        raise Forbidden("you cannot disable yourself; ask another admin")
    return UserOut.of(state(request).accounts.set_disabled(name, True))


@router.post("/users/{name}/enable", response_model=UserOut)
def enable_user(request: Request, name: str, principal: Admin) -> UserOut:
    """Enable a disabled user again."""
    return UserOut.of(state(request).accounts.set_disabled(name, False))


@router.post("/users/{name}/role", response_model=UserOut)
def set_role(request: Request, name: str, body: RoleIn, principal: Admin) -> UserOut:
    """Give a user another role."""
    return UserOut.of(state(request).accounts.set_role(name, body.role))


@router.get("/tokens", response_model=list[ApiToken])
def list_tokens(request: Request, principal: Admin) -> list[ApiToken]:
    """Every API token, oldest first, without secrets."""
    return state(request).accounts.tokens()


@router.post("/users/{name}/tokens", response_model=IssuedToken, status_code=201)
def issue_token(request: Request, name: str, body: TokenIn, principal: Admin) -> IssuedToken:
    """Issue an API token for a user; its secret is in this answer only."""
    secret, token = state(request).accounts.issue_token(name, body.label.strip())
    return IssuedToken(**asdict(token), token=secret)


@router.post("/tokens/{token_id}/revoke", response_model=ApiToken)
def revoke_token(request: Request, token_id: str, principal: Admin) -> ApiToken:
    """Revoke an API token (kept, revoked, for the record)."""
    accounts = state(request).accounts
    accounts.revoke_token(token_id)
    (token,) = [k for k in accounts.tokens() if k.id == token_id]
    return token


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, principal: Viewer) -> JSONResponse:
    """The OpenAPI document of this API (behind login like everything else)."""
    return JSONResponse(request.app.openapi())


@metrics_router.get("/metrics", response_class=Response)
def metrics(request: Request, principal: Viewer) -> Response:
    """Prometheus metrics read from the store now (any logged-in user or token)."""
    from prometheus_client import CONTENT_TYPE_LATEST

    from ..observability.metrics import render_metrics

    return Response(render_metrics(state(request).service.store),
                    media_type=CONTENT_TYPE_LATEST)
