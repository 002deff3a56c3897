"""Files the server writes for others to read (the development certificate and its key) appear
whole or not at all: a reader never meets half a PEM file, and a failed write leaves the old one."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fingrade.private_files import FILE_MODE, write_atomically


def test_the_new_content_replaces_the_old_whole_with_the_mode_asked(tmp_path: Path) -> None:
    target = tmp_path / "dev-tls-key.pem"
    target.write_bytes(b"old")
    write_atomically(target, b"new content", FILE_MODE)
    assert target.read_bytes() == b"new content"
    assert stat.S_IMODE(target.stat().st_mode) == FILE_MODE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev-tls-key.pem"]


def test_a_failed_write_leaves_the_old_file_and_no_leftover(tmp_path: Path) -> None:
    target = tmp_path / "dev-tls-cert.pem"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomically(target, "not bytes", 0o644)  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev-tls-cert.pem"]
