"""scripts/dev: usage without installing anything, and a venv that keeps the torch build it was made with."""

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "dev"


def _fake_venv(folder: Path, spec: str) -> Path:
    """A venv whose python only records how it was called; its stamp says it was made with ``spec``."""
    log = folder / "calls.log"
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    python.chmod(0o755)
    (folder / ".installed").write_text(spec + "\n")
    os.utime(folder / ".installed")  # newer than pyproject.toml: nothing to reinstall
    return log


def _run(args, venv, **env):
    environment = {k: v for k, v in os.environ.items() if k not in ("TORCH_SPEC", "FORECAST_EXTRAS")}  # CI sets both
    environment |= {"FORECAST_VENV": str(venv)} | env
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=environment)


def test_usage_installs_nothing(tmp_path):
    result = _run([], tmp_path / "venv")
    assert result.returncode == 2 and "scripts/dev train" in result.stdout
    assert not (tmp_path / "venv").exists()


def test_a_venv_keeps_its_torch_build_when_torch_spec_is_unset(tmp_path):
    log = _fake_venv(tmp_path / "venv", "torch==2.13.0")
    result = _run(["test", "--version"], tmp_path / "venv")
    assert result.returncode == 0, result.stderr
    calls = log.read_text()
    assert "pip install" not in calls and "-m pytest --version" in calls  # no CUDA build pulled in
    changed = _run(["test", "--version"], tmp_path / "venv", TORCH_SPEC="torch==2.13.0+other")
    assert "installing" in changed.stderr and "--force-reinstall --no-deps torch==2.13.0+other" in log.read_text()
