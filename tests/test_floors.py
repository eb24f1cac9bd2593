"""The house has floors: a module imports only from its own floor or below (docs/architecture.md).

The import graph of ``src/caveat`` is read with ``ast`` (imports inside functions and under
``TYPE_CHECKING`` included) and checked for circles, for imports of the CLI outside ``cli/``, for
imports of the facade outside the faces, for upward imports against ``FLOORS``, and for imports of
caveat modules inside functions outside ``cli/`` (there they keep ``caveat --help`` from importing torch).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "caveat"

# bottom to top; a module's floor is that of its longest listed prefix
FLOORS: list[tuple[str, ...]] = [
    (
        "caveat._version",
        "caveat.types",
        "caveat.errors",
        "caveat.io",
        "caveat.progress",
        "caveat.uncertainty.errors",
    ),
    # objectives, attack algorithms and the validation metrics need only the registry and the contracts; the
    # config checks their names
    (
        "caveat.registry",
        "caveat.config",
        "caveat.training.objectives",
        "caveat.training.validation_metric",
        "caveat.robustness.attacks",
    ),
    # arrays in, arrays out: readers, models, deciders, metrics and the uncertainty scores
    (
        "caveat.data",
        "caveat.models",
        "caveat.decide",
        "caveat.evaluation",
        "caveat.evaluation.metrics",
        "caveat.evaluation.calibration",
        "caveat.uncertainty.scores",
    ),
    (
        "caveat.uncertainty",
        "caveat.calibration",
        "caveat.inference",
        "caveat.rows",
        "caveat.batchscore",
        "caveat.raybatch",
        "caveat.evaluation.uncertainty",
    ),
    ("caveat.explain", "caveat.robustness", "caveat.generate", "caveat.evaluation.methods", "caveat.training.augment"),
    (
        "caveat.training",
        "caveat.calibration.run",
        "caveat.calibration.fit_text",
        "caveat.calibration.fit_spans",
        "caveat.evaluation.run",
        "caveat.explain.evaluate",
        "caveat.robustness.run",
        "caveat.robustness.certify_run",
        "caveat.robustness.compare",
        "caveat.robustness.compare_rows",
        "caveat.robustness.shift",
        "caveat.report",
    ),
    ("caveat.api", "caveat"),
    ("caveat.cli", "caveat.service", "caveat.__main__"),
]
FACES = ("caveat.cli", "caveat.service", "caveat.__main__")
LAZY_ALLOWED = ("caveat.cli",)  # command modules import the library when a command runs: fast start-up


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _listed_under(module: str, prefix: str) -> bool:
    """A FLOORS entry covers its subpackages, except the root package ``caveat`` which covers only itself."""
    return module == prefix if prefix == "caveat" else _under(module, prefix)


def floor_of(module: str) -> int:
    best, floor = -1, None
    for i, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if _listed_under(module, prefix) and len(prefix) > best:
                best, floor = len(prefix), i
    if floor is None:
        raise AssertionError(f"{module} has no floor: add it to FLOORS in tests/test_floors.py")
    return floor


def modules(root: Path = SRC) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.AST, package: str) -> list[str]:
    """The modules (or module.name) an import statement names, relative imports resolved against ``package``."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join(up + ([node.module] if node.module else []))
        return [f"{base}.{a.name}" for a in node.names]
    return []


def _walk(node: ast.AST, in_function: bool = False):
    """Every node below ``node`` with whether it sits inside a function (or lambda)."""
    for child in ast.iter_child_nodes(node):
        yield child, in_function
        inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _walk(child, inside)


def imports(root: Path = SRC) -> list[tuple[str, str, bool, int]]:
    """``(importer, imported, inside_a_function, line)`` for every import of a caveat module."""
    known = modules(root)
    edges = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node, in_function in _walk(tree):
            for target in _targets(node, package):
                resolved = _resolve(target, known) if target.startswith("caveat") else None
                if resolved and resolved != module:
                    edges.append((module, resolved, in_function, node.lineno))
    return edges


def circles(edges) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for a, b, _, _ in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def connect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def violations(root: Path = SRC) -> dict[str, list[str]]:
    edges = imports(root)
    found = {"circles": [" <-> ".join(c) for c in circles(edges)], "cli": [], "facade": [], "upward": [], "lazy": []}
    for a, b, lazy, line in edges:
        where = f"{a}:{line} imports {b}"
        if _under(b, "caveat.cli") and not (_under(a, "caveat.cli") or a == "caveat.__main__"):
            found["cli"].append(where)
        if (_under(b, "caveat.api") or b == "caveat") and not (any(_under(a, f) for f in FACES) or a == "caveat"):
            found["facade"].append(where)
        if floor_of(b) > floor_of(a):
            found["upward"].append(f"{where} (floor {floor_of(a)} -> {floor_of(b)})")
        if lazy and not any(_under(a, p) for p in LAZY_ALLOWED):
            found["lazy"].append(where)
    return found


@pytest.mark.parametrize("kind", ["circles", "cli", "facade", "upward", "lazy"])
def test_the_house_keeps_its_floors(kind):
    assert violations()[kind] == []


def test_every_module_has_a_floor():
    for module in modules():
        floor_of(module)


def test_the_checks_catch_a_planted_circle_and_an_upward_import(tmp_path):
    pkg = tmp_path / "caveat"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text("")
    (pkg / "types.py").write_text("from caveat.inference import Predictor\n")  # upward, and a circle with inference
    (pkg / "inference.py").write_text("from caveat.types import Task\n\ndef f():\n    from caveat.cli import x\n")
    found = violations(pkg)
    assert found["circles"] == ["caveat.inference <-> caveat.types"]
    assert any(v.startswith("caveat.types:1 imports caveat.inference") for v in found["upward"])
    assert found["cli"] == ["caveat.inference:4 imports caveat.cli"]
    assert found["lazy"] == ["caveat.inference:4 imports caveat.cli"]
