"""One-time store on Redis (shared by all nodes)."""
