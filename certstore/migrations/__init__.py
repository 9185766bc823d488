"""Alembic migrations of certstore (run through ``certstore db upgrade``)."""
