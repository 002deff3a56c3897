"""SQL stores (SQLite and PostgreSQL through one SQLAlchemy Core code path)."""
