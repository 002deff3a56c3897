"""Signing keys: lifecycle (next -> active -> retired), rotation without restart, JWKS."""
