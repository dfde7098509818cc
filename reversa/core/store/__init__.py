"""Durable storage of plans, state machines, the audit chain and review records."""

from .schema import MIGRATIONS, schema_version
from .store import Store, resolve_url

__all__ = ["MIGRATIONS", "Store", "resolve_url", "schema_version"]
