"""Trading tests use the oracle core's databases (SQLite and PostgreSQL)."""

from tests.oracle.world import database_url, postgres_base  # noqa: F401
