"""Persistence: SQLAlchemy (async) tables, migrations, units of work and the event log."""
