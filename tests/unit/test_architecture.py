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
# every module in it.
PURE = (
    "detector.alerts",
    "detector.allowlist",
    "detector.baseline",
    "detector.batch_query",
    "detector.catchup",
    "detector.cloudtrail",
    "detector.cloudtrail_categories",
    "detector.cloudtrail_ecs",
    "detector.cloudtrail_files",
    "detector.datemath",
    "detector.demo_data",
    "detector.errors",
    "detector.execution_docs",
    "detector.failed_windows",
    "detector.explanation",
    "detector.health",
    "detector.index_templates",
    "detector.javamap",
    "detector.kql",
    "detector.leases",
    "detector.logs",
    "detector.metrics",
    "detector.promotion",
    "detector.notify.channels",
    "detector.notify.message",
    "detector.notify.routing",
    "detector.notify.state",
    "detector.query",
    "detector.reason",
    "detector.results",
    "detector.rules",
    "detector.settings",
    "detector.sinks",
    "detector.skipped",
    "detector.times",
    "detector.type_groups",
    "detector.window",
)
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


def test_pure_core_imports_no_io_library_at_run_time() -> None:
    imports = ", ".join(_pure_modules())
    code = f"import sys, {imports}; print(sorted(m for m in {IO_LIBRARIES!r} if m in sys.modules))"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"
