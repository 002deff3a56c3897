"""Stores behind narrow interfaces: durable (SQL) and one-time (SQL or Redis)."""
