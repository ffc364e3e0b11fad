"""The import layering, read from the source (every import, function-level ones included): no module
circle; calibration uses only the runtime's core; ``realtime.artifacts`` is the runtime's one door to
calibration and the one place backends get artifacts from; benchmarks use public names only."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("realtime", "train", "calibration", "benchmarks")
#: what calibration may use of the runtime: the model, model files, the exporter, metrics and frame
#: sources, errors, the ONNX Runtime session opener, and two leaf helpers that import nothing of
#: stylecast but errors
CALIBRATION_MAY_USE = frozenset(
    f"realtime.{m}"
    for m in ("errors", "model", "modelfile", "export", "metrics", "sources", "outputs", "argtypes", "ort_session", "machine")
)
ARTIFACTS = "realtime.artifacts"
#: what backends may take from the builders' modules: the graph's interface and shape profiles, no builder
BACKENDS_MAY_TAKE = {
    "realtime.export": {"INPUT_NAMES", "OUTPUT_NAME"},
    "realtime.compile": {"DEFAULT_SHAPES", "PRECISIONS", "ShapeProfile", "parse_shapes"},
}

#: (importing module, imported module, names taken from it; empty for ``import x``)
Edge = tuple[str, str, tuple[str, ...]]


def project_sources() -> dict[str, str]:
    sources = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            sources[name] = path.read_text()
    return sources


def edges(sources: Mapping[str, str]) -> Iterator[Edge]:
    """Every import of every module, wherever it stands in the file, resolved to project modules."""
    for module, text in sources.items():
        is_package = f"{module}.__init__" not in sources and any(m.startswith(module + ".") for m in sources)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in sources:
                        yield module, alias.name, ()
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    # ``from pkg import mod`` imports the module; ``from mod import name`` takes a name.
                    if f"{base}.{alias.name}" in sources:
                        yield module, f"{base}.{alias.name}", ()
                    elif base in sources:
                        yield module, base, (alias.name,)


def circles(sources: Mapping[str, str]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {m: set() for m in sources}
    for a, b, _ in edges(sources):
        if a != b:
            graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layering_problems(sources: Mapping[str, str]) -> list[str]:
    problems = [f"import circle: {' -> '.join(group)}" for group in circles(sources)]
    uses: dict[str, set[str]] = {}
    for a, b, names in edges(sources):
        uses.setdefault(a, set()).add(b)
        top = lambda m: m.split(".")[0]  # noqa: E731
        if top(a) == "calibration" and top(b) == "realtime" and b not in CALIBRATION_MAY_USE:
            problems.append(f"{a} imports {b}: calibration may use only the runtime's core")
        if top(a) == "realtime" and top(b) == "calibration" and a != ARTIFACTS:
            problems.append(f"{a} imports {b}: only {ARTIFACTS} imports calibration")
        if a.startswith("realtime.backends.") and (top(b) == "calibration" or b == "realtime.engine_cache"):
            problems.append(f"{a} imports {b}: backends get artifacts from {ARTIFACTS}")
        if a.startswith("realtime.backends.") and b in BACKENDS_MAY_TAKE and not (names and set(names) <= BACKENDS_MAY_TAKE[b]):
            taken = sorted(set(names) - BACKENDS_MAY_TAKE[b]) or "the module"
            problems.append(f"{a} takes {taken} from {b}: backends get artifacts from {ARTIFACTS}")
        if top(a) == "benchmarks" and top(b) != "benchmarks":
            private = [n for n in names if n.startswith("_")] + [p for p in b.split(".") if p.startswith("_")]
            if private:
                problems.append(f"{a} imports private {private} of {b}: benchmarks use public names only")
    # Through the core, calibration must not reach the rest of the runtime either.
    reached, todo = set(), [m for m in sources if m.split(".")[0] == "calibration"]
    while todo:
        for b in uses.get(todo.pop(), ()):
            if b.startswith("realtime.") and b not in reached:
                reached.add(b)
                todo.append(b)
    problems += [f"calibration reaches {m} through the core" for m in sorted(reached - CALIBRATION_MAY_USE)]
    return problems


def test_the_project_keeps_its_layering() -> None:
    sources = project_sources()
    assert ARTIFACTS in sources and "calibration" in sources
    assert layering_problems(sources) == []


# --- the checker itself, on made-up modules ------------------------------------------------------------


def _project(**modules: str) -> dict[str, str]:
    return {name.replace("__", "."): text for name, text in modules.items()}


def test_a_lazy_import_closing_a_circle_is_found() -> None:
    sources = _project(
        realtime__a="from realtime.b import f\n",
        realtime__b="def f():\n    from realtime.c import g\n",
        realtime__c="def g():\n    import realtime.a\n",
        realtime__d="from realtime import a\n",
    )
    assert circles(sources) == [["realtime.a", "realtime.b", "realtime.c"]]


def test_relative_and_package_imports_resolve() -> None:
    sources = _project(calibration="from .gate import x\n", calibration__gate="from . import frames\n", calibration__frames="")
    assert set(edges(sources)) == {("calibration", "calibration.gate", ("x",)), ("calibration.gate", "calibration.frames", ())}


@pytest.mark.parametrize(
    ("module", "text", "problem"),
    [
        ("calibration__quantize", "def f():\n    from realtime.backends.onnx_backend import OnnxBackend\n", "calibration may use only"),
        ("realtime__export", "def f():\n    import calibration\n", "only realtime.artifacts imports calibration"),
        ("realtime__backends__onnx_backend", "from realtime.export import export_onnx\n", "backends get artifacts"),
        ("realtime__backends__onnx_backend", "from realtime.engine_cache import EngineCache\n", "backends get artifacts"),
        ("benchmarks__suite", "from realtime.artifacts import _onnx_problem\n", "public names only"),
    ],
)
def test_each_rule_can_fail(module: str, text: str, problem: str) -> None:
    present = (*CALIBRATION_MAY_USE, ARTIFACTS, "calibration", "realtime.engine_cache", "realtime.backends.onnx_backend")
    sources = {**dict.fromkeys(present, ""), **_project(**{module: text})}
    assert any(problem in p for p in layering_problems(sources)), layering_problems(sources)


def test_calibration_may_not_reach_the_runtime_through_the_core() -> None:
    sources = _project(
        calibration="from realtime.sources import x\n", realtime__sources="from realtime.pipeline import y\n", realtime__pipeline=""
    )
    assert "calibration reaches realtime.pipeline through the core" in layering_problems(sources)
