"""The ``reversa`` operator CLI (typer + rich)."""
