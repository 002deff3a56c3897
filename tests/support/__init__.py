"""Test support: a real Fingrade server on loopback and an OAuth flow driver."""
