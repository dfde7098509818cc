"""The throwaway PostgreSQL of the tests now ships with the package (reversa.testing.pg)."""

from reversa.testing.pg import PgServer, find_bin, free_port, start

__all__ = ["PgServer", "find_bin", "free_port", "start"]
