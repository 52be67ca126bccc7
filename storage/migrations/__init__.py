"""Alembic migrations of the store, applied by `roleup db upgrade`."""
