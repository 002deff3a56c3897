"""Scope values (RFC 6749 §3.3): space-delimited tokens; a repeated token counts once."""

from __future__ import annotations

from fingrade.protocol.errors import invalid_scope


def parse_scope(value: str) -> list[str]:
    return [s for s in dict.fromkeys(value.split(" ")) if s]


def narrow(requested: str | None, allowed: list[str], what: str) -> str:
    """A request may name a subset of `allowed`; without a scope parameter it gets all of it
    (RFC 6749 §3.3 default, §6 refresh: never wider than the grant)."""
    if requested is None:
        return " ".join(allowed)
    wanted = parse_scope(requested)
    if not wanted or any(s not in allowed for s in wanted):
        raise invalid_scope(f"the requested scope exceeds {what}")
    return " ".join(wanted)
