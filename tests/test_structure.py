"""The library's shape: no import cycles, small functions and files, and a docstring opening every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGES = ("features", "heads")
MAX_FUNCTION_LINES = 40
MAX_FILE_LINES = 300


def library_files() -> list[Path]:
    return sorted([ROOT / "cli.py", *(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))])


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project's modules path imports, at any depth (deferred imports included: they can cycle too)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[:len(package.split(".")) - node.level + 1], *filter(None, [base])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def test_no_import_cycles():
    modules = {module_name(path): path for path in library_files()}
    graph = {name: imported_modules(path, set(modules)) - {name} for name, path in modules.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            # A package's __init__ importing its own sub-modules lazily is how its names load; not a cycle.
            if target.startswith(f"{name}.") or name.startswith(f"{target}."):
                continue
            if state.get(target) == "open":
                pytest.fail(f"import cycle: {' -> '.join([*trail[trail.index(target):], target])}")
            if target not in state:
                visit(target, [*trail, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("path", library_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_module_is_small_and_says_its_job(path):
    source = path.read_text()
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree)
    assert docstring and docstring.splitlines()[0].strip(), f"{path.name} opens without a docstring"
    assert len(source.splitlines()) <= MAX_FILE_LINES
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_readme_layout_names_every_module_and_sub_package():
    """A newcomer reads the tree from the README: each module of features/ and heads/ (and of the sub-packages that
    list their files there) by name, every sub-package by its folder."""
    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    listed_files = {"features", "heads", "engines", "predict", "console"}
    missing = sorted({f"{path.parent.name}/" for path in library_files() if path.parent.parent.name in PACKAGES
                      and f"{path.parent.name}/" not in layout} |
                     {str(path.relative_to(ROOT)) for path in library_files() if path.parent.name in listed_files
                      and path.name != "__init__.py" and path.name not in layout})
    assert not missing, f"README's Layout section does not mention {missing}"
