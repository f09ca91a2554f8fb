"""The architecture as the code has it: the import graph of ``harness/`` and
``persistence/``, computed from their source, has no cycle, and no package imports one
above it (docs/architecture.md draws the same layers).

Every import counts, the ones inside a function or under ``TYPE_CHECKING`` too: a lazy
import that closes a circle is still a circle a reader has to untangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each package and the packages it may import; the order is the one a reader climbs:
# what a run means (check) -> what can go wrong (faults) -> how calls are seen (intercept)
# -> how results are shown (report) -> how a scenario runs (run) -> how bugs are searched
# for (search) -> the top: cli and the command helpers beside it, the pytest plugin.
LAYERS: dict[str, set[str]] = {
    "persistence": set(),
    "harness.check": set(),
    "harness.faults": {"harness.check"},
    "harness.intercept": {"harness.check", "harness.faults"},
    "harness.report": {"harness.check", "harness.faults"},
    "harness.run": {"harness.check", "harness.faults", "harness.intercept", "harness.report",
                    "persistence"},
    "harness.search": {"harness.check", "harness.faults", "harness.intercept",
                       "harness.report", "harness.run"},
}
TOP = "harness"  # the modules directly in harness/: they may import every package


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in ("harness", "persistence"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports (a package's ``__init__`` counts as itself)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in known:
                    out.add(full)  # `from harness.run import runner`: the module itself
                elif base in known:
                    out.add(base)
    out.discard(name)
    return out


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def _layer(module: str) -> str:
    for layer in sorted(LAYERS, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return TOP


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_harness_or_persistence():
    assert _cycles(_graph()) == []


def test_no_package_imports_one_above_it():
    graph = _graph()
    upward = sorted(f"{a} -> {b}" for a, deps in graph.items() for b in deps
                    if _layer(a) != TOP and _layer(b) != _layer(a)
                    and _layer(b) not in LAYERS[_layer(a)])
    assert upward == [], "imports that run against the layers:\n" + "\n".join(upward)


def test_no_package_reaches_into_another_ones_private_modules():
    # a module whose name starts with "_" is its package's own business; what another
    # package needs is a public module (or the package's __init__)
    graph = _graph()
    private = sorted(f"{a} -> {b}" for a, deps in graph.items() for b in deps
                     if b.rpartition(".")[2].startswith("_") and b.startswith("harness.")
                     and _layer(a) != _layer(b))
    assert private == [], "\n".join(private)


def test_persistence_imports_only_the_standard_library():
    graph = _graph()
    assert not any(b.startswith("harness") for a, deps in graph.items()
                   if a.startswith("persistence") for b in deps)


def test_the_top_of_harness_is_small_and_every_package_names_its_role():
    top = sorted(p.name for p in (ROOT / "harness").glob("*.py"))
    assert len(top) <= 8, top
    packages = [p for p in (ROOT / "harness").iterdir() if (p / "__init__.py").is_file()]
    assert {f"harness.{p.name}" for p in packages} == {k for k in LAYERS if "." in k}
    for pkg in packages:
        doc = ast.get_docstring(ast.parse((pkg / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "may import" in doc.lower(), f"harness/{pkg.name}/__init__.py: say its role"


def test_every_module_stays_readable():
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 420}
    assert long == {}, "house rule: modules of about 400 lines at most"
