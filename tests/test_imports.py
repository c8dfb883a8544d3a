"""The package's import graph, counting imports inside functions: no cycle, and the dependencies
docs/architecture.md states hold."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "forecast"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imported(node: ast.AST, module: str) -> list[str]:
    """The project modules an import statement loads (``from a import b`` loads ``a.b`` when that is a module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        assert not node.level, f"{module}: a relative import (the package imports by absolute names)"
        base = node.module or ""
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
    else:
        return []
    found = []
    for name in names:
        while name and name not in MODULES:  # import a.b.c of a module a.b (an attribute c)
            name = name.rpartition(".")[0]
        if name:
            found.append(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports anywhere in its code (top level, functions, type-checking blocks)."""
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        graph[module] = {name for node in ast.walk(tree) for name in _imported(node, module) if name != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]] and cycles({"a": {"b"}, "b": set()}) == []
    source = "def f():\n    from forecast.cli import ForecastCLI\n"
    assert [n for node in ast.walk(ast.parse(source)) for n in _imported(node, "forecast.main")] == ["forecast.cli"]


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def _reaches(graph, start, prefix):
    """Whether ``start`` imports, directly or through others, a module named ``prefix`` or below it."""
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for target in graph.get(node, ()):
            if target == prefix or target.startswith(prefix + "."):
                return True
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return False


def test_the_dependencies_docs_architecture_states():
    graph = import_graph()
    # forecast.nn knows nothing about stocks, forecast.data nothing about models, and neither about the commands
    for module in (m for m in MODULES if m.startswith("forecast.nn")):
        assert not any(t.startswith("forecast.") and not t.startswith("forecast.nn") for t in graph[module]), module
    for module in (m for m in MODULES if m.startswith("forecast.data")):
        for above in ("forecast.model", "forecast.cli", "forecast.run", "forecast.backtest", "forecast.tune"):
            assert not _reaches(graph, module, above), (module, above)
    # the errors every layer raises sit below every layer
    assert graph["forecast.errors"] == set()
    # the run API does not know the commands that are made of it; executors do not know backtest or tune
    for module in ("forecast.run", "forecast.cli", "forecast.model.forecaster"):
        for above in ("forecast.main", "forecast.backtest", "forecast.tune"):
            assert not _reaches(graph, module, above), (module, above)
    for module in (m for m in MODULES if m.startswith("forecast.executors")):
        assert not _reaches(graph, module, "forecast.backtest") and not _reaches(graph, module, "forecast.tune")
    # backtest does not know tune
    assert not any(_reaches(graph, m, "forecast.tune") for m in MODULES if m.startswith("forecast.backtest"))
