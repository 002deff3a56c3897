"""The package layers stay as docs/architecture.md draws them: every `import` of a Fingrade module
is checked against the table below (read from the source with `ast`, nothing is imported).

    protocol   leaf: HTTP values, errors, JOSE, DPoP, resource-server rules, the ASGI adapter
    finance    leaf (only protocol's RFC 3339 date grammar): currencies, IBAN, amounts, detail types
    config     settings; reads finance (currencies)
    oauth      the AS core, sans-I/O: protocol, finance, config — never web, bank or store adapters
    store      adapters of the core's ports (oauth.ports, oauth.models); protocol, finance, config
    bank       the resource server: protocol, finance, config, store infrastructure — never oauth or web
    web, runtime, cli, demo   composition roots: may wire anything
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "fingrade"

# layer -> the Fingrade modules (prefixes) it may import besides itself
ALLOWED: dict[str, tuple[str, ...]] = {
    "protocol": (),
    "finance": ("fingrade.protocol.rfc3339",),
    "private_files": (),
    "config": ("fingrade.protocol", "fingrade.finance"),
    "oauth": ("fingrade.protocol", "fingrade.finance", "fingrade.config"),
    "store": (
        "fingrade.protocol",
        "fingrade.finance",
        "fingrade.config",
        "fingrade.oauth.ports",
        "fingrade.oauth.models",
        "fingrade.private_files",
    ),
    "bank": (
        "fingrade.protocol",
        "fingrade.finance",
        "fingrade.config",
        "fingrade.store",
        "fingrade.private_files",
        "fingrade.server_secrets",
    ),
    "devtls": ("fingrade.private_files",),
    "server_secrets": ("fingrade.config", "fingrade.private_files"),
}
COMPOSITION_ROOTS = {"web", "runtime", "cli", "demo", "__main__", "__init__"}


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _module(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every Fingrade import in `path`, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module(path).split(".") if path.name == "__init__.py" else _module(path).split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            # `from fingrade.x import y` may name a module y: check the most specific path.
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return [(line, name) for line, name in found if name == "fingrade" or name.startswith("fingrade.")]


def _allowed(layer: str, target: str) -> bool:
    own = f"fingrade.{layer}"
    if target == own or target.startswith(own + "."):
        return True
    return any(target == p or target.startswith(p + ".") for p in ALLOWED[layer])


def violations(layer: str) -> list[str]:
    files = [PACKAGE / f"{layer}.py"] if (PACKAGE / f"{layer}.py").exists() else sorted((PACKAGE / layer).rglob("*.py"))
    out = []
    for path in files:
        for line, target in imports_of(path):
            if not _allowed(layer, target):
                out.append(f"{path.relative_to(SRC)}:{line} imports {target}")
    return out


def test_every_module_belongs_to_a_known_layer() -> None:
    layers = {_layer(p) for p in PACKAGE.rglob("*.py")}
    assert layers <= set(ALLOWED) | COMPOSITION_ROOTS, sorted(layers - set(ALLOWED) - COMPOSITION_ROOTS)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    assert violations(layer) == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The AST reading resolves relative and `from package import module` forms."""
    bad = tmp_path / "fingrade" / "protocol" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from ..oauth import context\nimport fingrade.bank.ledger\nfrom fingrade import web\n")
    global SRC
    saved = SRC
    SRC = tmp_path
    try:
        found = [name for _, name in imports_of(bad)]
    finally:
        SRC = saved
    assert found == ["fingrade.oauth.context", "fingrade.bank.ledger", "fingrade.web"]
    assert not any(_allowed("protocol", name) for name in found)
    assert not _allowed("bank", "fingrade.oauth.token_endpoint") and _allowed("bank", "fingrade.protocol.errors")
    assert not _allowed("oauth", "fingrade.web.app") and not _allowed("oauth", "fingrade.store.sql.db")
