"""The layering rules of docs/architecture.md, checked on the source: the pure core never reaches
the Elasticsearch client, APScheduler or tenacity (not even for typing), and no module of the
package takes part in an import cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "detector"

# The pure core: no I/O library, only values, rules, queries and documents. A package stands for
# every module in it. Pure packages are pure as a whole (their `__init__` included, so importing
# any of their modules at run time loads no I/O library); the other entries are pure modules of a
# package that also has I/O modules (checked on the source only: importing them runs their
# package's `__init__`, which may load the client).
PURE_PACKAGES = (
    "detector.kql",
    "detector.query",
    "detector.rules",
    "detector.schedule",
)
PURE_TOP_LEVEL = (
    "detector.datemath",
    "detector.errors",
    "detector.logs",
    "detector.metrics",
    "detector.results",
    "detector.settings",
    "detector.times",
)
PURE_MODULES_OF_IO_PACKAGES = (
    "detector.alerts.document",
    "detector.alerts.promotion",
    "detector.alerts.reason",
    "detector.alerts.s3_location",
    "detector.cloudtrail.categories",
    "detector.cloudtrail.ecs",
    "detector.cloudtrail.files",
    "detector.cloudtrail.javamap",
    "detector.cloudtrail.template",
    "detector.deployment.scenario",
    "detector.es.templates",
    "detector.execution_log.documents",
    "detector.execution_log.health",
    "detector.explain.verdict",
    "detector.preview.diff",
    "detector.preview.report",
    "detector.preview.requests",
    "detector.preview.simulation",
    "detector.notify.channels",
    "detector.notify.message",
    "detector.notify.routing",
    "detector.notify.state",
    "detector.ruletest.data",
    "detector.ruletest.fixture",
    "detector.ruletest.report",
    "detector.ruletest.scaffold",
    "detector.ruletest.verdict",
    "detector.service.sinks",
)
PURE = PURE_PACKAGES + PURE_TOP_LEVEL + PURE_MODULES_OF_IO_PACKAGES
# The modules at the top of `detector/` besides `__init__` and `__main__`: the shared values
# every package uses. Anything else belongs in a package named for what it is.
TOP_LEVEL_MODULES = 10
IO_LIBRARIES = ("elasticsearch", "elastic_transport", "apscheduler", "tenacity")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@cache
def _imports(name: str) -> frozenset[str]:
    """Every module `name` imports anywhere (top level, functions, `if TYPE_CHECKING:`)."""
    path = _modules()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            submodules = {f"{base}.{alias.name}" for alias in node.names} & _modules().keys()
            found.update(submodules)
            if len(submodules) < len(node.names):  # some names are defined in `base` itself
                found.add(base)
    modules = _modules()
    return frozenset(item for item in found if item in modules or item.split(".")[0] != "detector")


@cache
def _internal(name: str) -> frozenset[str]:
    return frozenset(item for item in _imports(name) if item in _modules() and item != name)


def _pure_modules() -> list[str]:
    return [
        name
        for name in _modules()
        if any(name == pure or name.startswith(f"{pure}.") for pure in PURE)
    ]


def _reachable(start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for item in _internal(todo.pop()) - seen:
            seen.add(item)
            todo.append(item)
    return seen


def test_every_declared_pure_module_exists() -> None:
    assert all(
        any(name == pure or name.startswith(f"{pure}.") for name in _modules()) for pure in PURE
    )


@pytest.mark.parametrize("module", _pure_modules())
def test_pure_module_never_reaches_an_io_library(module: str) -> None:
    reached = {
        f"{name} imports {item}"
        for name in _reachable(module)
        for item in _imports(name)
        if item.split(".")[0] in IO_LIBRARIES
    }
    assert not reached


@pytest.mark.parametrize("module", _pure_modules())
def test_pure_module_imports_only_pure_modules(module: str) -> None:
    assert _internal(module) <= set(_pure_modules())


def test_no_import_cycle() -> None:
    def cycle_from(start: str) -> list[str] | None:
        stack, path = [(start, iter(sorted(_internal(start))))], [start]
        while stack:
            _node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
            elif child == start:
                return [*path, child]
            elif child not in path and not _is_parent_package(child, start):
                stack.append((child, iter(sorted(_internal(child)))))
                path.append(child)
        return None

    cycles = [cycle for name in _modules() if (cycle := cycle_from(name))]
    assert not cycles, " -> ".join(cycles[0])


def _is_parent_package(candidate: str, module: str) -> bool:
    # `from detector.kql.nodes import X` first runs `detector/kql/__init__.py`, which imports its
    # own submodules: a package re-exporting its parts is not a cycle.
    return module.startswith(f"{candidate}.")


def test_pure_packages_import_no_io_library_at_run_time() -> None:
    pure = [
        name
        for name in _modules()
        if any(name == top or name.startswith(f"{top}.") for top in PURE_PACKAGES + PURE_TOP_LEVEL)
    ]
    code = (
        f"import sys, {', '.join(pure)}; "
        f"print(sorted(m for m in {IO_LIBRARIES!r} if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


def _package_of(module: str) -> str:
    """The part of `detector` a module belongs to: its package, or itself at the top."""
    return ".".join(module.split(".")[:2])


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name in _modules():
        edges = graph.setdefault(_package_of(name), set())
        edges.update(_package_of(item) for item in _internal(name))
    for package, edges in graph.items():
        edges.discard(package)
    graph.pop("detector", None)  # `detector/__init__.py`: the version only
    return graph


def test_no_import_cycle_between_packages() -> None:
    graph = _package_graph()

    def cycle_from(start: str) -> list[str] | None:
        stack, path = [iter(sorted(graph.get(start, ())))], [start]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                path.pop()
            elif child == start:
                return [*path, child]
            elif child not in path:
                stack.append(iter(sorted(graph.get(child, ()))))
                path.append(child)
        return None

    cycles = [cycle for package in graph if (cycle := cycle_from(package))]
    assert not cycles, " -> ".join(cycles[0])


def test_few_modules_at_the_top_of_the_package() -> None:
    top = sorted(path.stem for path in PACKAGE.glob("*.py") if not path.stem.startswith("__"))
    assert len(top) <= TOP_LEVEL_MODULES, top


def test_every_package_has_a_face() -> None:
    """Each package's `__init__` says what it holds and lists what it offers in `__all__`."""
    faceless = []
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        names = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        if not ast.get_docstring(tree) or "__all__" not in names:
            faceless.append(init.parent.name)
    assert not faceless


def test_only_package_faces_declare_all() -> None:
    repeated = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "__init__.py" and "__all__ =" in path.read_text(encoding="utf-8")
    ]
    assert not repeated
