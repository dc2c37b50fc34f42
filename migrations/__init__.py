"""Alembic migrations, installed as `trials.migrations`; run through `trials.db`."""
