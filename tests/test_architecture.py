"""docs/architecture.md stays true: every module under forecast/ has its row, and none is over 300 lines."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules():
    return sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "forecast").rglob("*.py"))


def test_every_module_is_in_the_architecture_table():
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in text.splitlines() if line.startswith("| `forecast/")}
    modules = set(_modules())
    assert not modules - rows, f"modules missing from docs/architecture.md: {sorted(modules - rows)}"
    assert not rows - modules, f"docs/architecture.md lists modules that do not exist: {sorted(rows - modules)}"


def test_no_module_is_over_300_lines():
    long = {m: n for m in _modules() if (n := len((ROOT / m).read_text().splitlines())) > 300}
    assert not long, long
