"""Docs stay true: every `tests/...py::test_name` a document under docs/ (or the README) points to
exists. Paths are relative to tests/; `X` = `path.py` lines define short names (docs/fapi2.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
ALIAS = re.compile(r"`(\w+)` = `([\w/]+\.py)`")
REF = re.compile(r"`(?:tests/)?([\w/]+\.py|[A-Z]+)::(\w+\*?)")


def _refs(doc: Path) -> list[tuple[str, str]]:
    text = doc.read_text()
    aliases = dict(ALIAS.findall(text))
    return [(aliases.get(path, path), name) for path, name in REF.findall(text)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_referenced_tests_exist(doc: Path) -> None:
    missing = []
    for path, name in _refs(doc):
        file = ROOT / "tests" / path
        if not file.exists():
            missing.append(f"{path} (no such file)")
            continue
        pattern = re.escape(name.rstrip("*")) + (r"\w*" if name.endswith("*") else r"\b")
        if not re.search(rf"def {pattern}", file.read_text()):
            missing.append(f"{path}::{name}")
    assert not missing, f"{doc.name} points to tests that do not exist: {missing}"


def test_the_checker_sees_references() -> None:
    assert len(_refs(ROOT / "docs" / "fapi2.md")) > 50
