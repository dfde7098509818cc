"""The review console: sagas, escalations, approvals and the audit in a browser.

``reversa console --db URL`` serves it (extra ``console``); ``reversa users``
manages who may log in. See ``docs/console.md``.
"""

from .accounts import Accounts, ApiToken, Role, Session, User
from .app import create_app
from .service import AuditKeys, Code, ConsoleService
from .web import ConsoleSettings

__all__ = [
    "create_app", "ConsoleSettings", "Code", "ConsoleService", "AuditKeys",
    "Accounts", "Role", "User", "Session", "ApiToken",
]
