"""Adapters of the core's storage ports (fingrade.oauth.ports): the durable store on SQL, the
one-time store on SQL or Redis, and both in memory (memory.py: tests and embedding, not a backend
the configuration offers)."""
