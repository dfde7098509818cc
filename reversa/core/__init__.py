"""Reversa's durable saga core (depends only on pydantic, SQLAlchemy and tenacity)."""
