"""The house holds its shape: layers, no import cycles, one error base, no click below the CLI.

`make lint` checks the layer contracts with import-linter (pyproject.toml); these
tests hold the same shape from the test suite, so a cycle fails `make test` too.
Imports inside functions count: hiding an import in a function does not hide a
dependency.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from events.errors import JiaheError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("events", "privacy", "rules", "projections", "streams", "access", "alerts", "sdk",
            "app", "api", "bench", "cli", "devtools")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    imported = graph.find_modules_directly_imported_by(child)
                    work.append((child, iter(sorted(imported))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_cycle_between_modules(graph: grimp.ImportGraph) -> None:
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    tiny = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        tiny.add_module(name)
    tiny.add_import(importer="pkg.a", imported="pkg.b")
    tiny.add_import(importer="pkg.b", imported="pkg.a")
    tiny.add_import(importer="pkg.c", imported="pkg.a")
    assert _cycles(tiny) == [["pkg.a", "pkg.b"]]


def test_import_linter_contracts_are_kept() -> None:
    """The layer, independence and forbidden-import contracts of pyproject.toml.

    In a child process: import-linter configures logging with ``dictConfig``, which
    would disable every logger already created in this test process.
    """
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_catalog_imports_nothing_else_of_the_repo(graph: grimp.ImportGraph) -> None:
    outside = {imported.split(".")[0]
               for module in graph.find_descendants("events") | {"events"}
               for imported in graph.find_modules_directly_imported_by(module)}
    assert outside <= {"events"}


def _exception_classes() -> list[tuple[str, type[BaseException]]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            names = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
            if not names:
                continue
            module_name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            module_name = module_name.removesuffix(".__init__")
            module = __import__(module_name, fromlist=["_"])
            for name in names:
                cls = getattr(module, name, None)
                if (inspect.isclass(cls) and issubclass(cls, BaseException)
                        and not name.startswith("_")):
                    found.append((f"{module_name}.{name}", cls))
    return found


def test_every_error_of_the_project_is_a_jiahe_error() -> None:
    errors = _exception_classes()
    assert len(errors) >= 10
    assert [name for name, cls in errors if not issubclass(cls, JiaheError)] == []
