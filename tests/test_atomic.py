"""Atomic writes: the file appears whole or not at all, with the permissions of any new file."""

import os
import stat

import pytest

from forecast.atomic import write_atomic


def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old\n")

    def half(tmp):
        tmp.write_text("half a fi")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        write_atomic(path, half)
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_a_write_replaces_the_file_returns_its_value_and_follows_the_umask(tmp_path):
    path = tmp_path / "out.csv"
    old = os.umask(0o022)
    try:
        assert write_atomic(path, lambda tmp: tmp.write_text("new\n")) == 4
    finally:
        os.umask(old)
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # a temporary file from tempfile would be 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
