"""The oracle's database, shared by readings and trades: one schema, one engine, one writer.

``schema`` declares every table; ``migrations`` (Alembic) builds them; ``database`` opens the
engine and migrates; ``writer`` runs SQLite's busiest writes on a thread of its own, and
``checkpoint`` copies SQLite's write-ahead log back into the database beside them. The queries
live with their domain: ``readings.store`` and ``trading.ledger``.
"""
