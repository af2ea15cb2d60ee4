"""State store: SQLAlchemy Core tables, Alembic migrations and the repositories."""
