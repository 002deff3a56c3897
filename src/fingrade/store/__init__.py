"""Adapters of the core's storage ports (fingrade.oauth.ports): the durable store on SQL, the
one-time store on SQL or Redis."""
