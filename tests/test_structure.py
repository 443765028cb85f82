"""The library's shape: one package, no import cycles, small functions and files, a docstring opening every module,
and docs/architecture.md naming every module."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

# The rooms of the headstart package (the checkout's root is the package: setup.cfg's package_dir).
ROOMS = ("console", "features", "heads")
TOP_MODULES = ("__init__.py", "__main__.py", "api.py", "cli.py")
MAX_FUNCTION_STATEMENTS = 40
MAX_FILE_LINES = 450  # formatted by ruff at 120 columns


def library_files() -> list[Path]:
    return sorted([*(ROOT / name for name in TOP_MODULES), *(p for room in ROOMS for p in (ROOT / room).rglob("*.py"))])


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(["headstart", *(parts[:-1] if parts[-1] == "__init__" else parts)])


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project's modules path imports, at any depth (deferred imports included: they can cycle too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path.name}: relative import (use headstart.<room>...)"
            base = node.module or ""
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def test_the_top_level_is_the_design_cards():
    """cli.py, features/, heads/, cache/, tests/, setup.cfg, bench/, docs/, console/ (the CLI's presentation), and
    what makes the checkout a package and a project; a new room goes inside features/ or heads/."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    folders = {name.split("/")[0] for name in tracked if "/" in name}
    assert folders <= {".ci", "bench", "cache", "console", "docs", "features", "heads", "tests"}


def test_every_import_of_the_project_goes_through_headstart():
    """A bare `import features` would load a second copy of a module, or someone else's `features` package."""
    bare = re.compile(r"^\s*(from|import)\s+(features|heads|console|files|pages|backbones|sources|vectors|cli)\b", re.M)
    sources = [*library_files(), *(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    offenders = [str(path.relative_to(ROOT)) for path in sources if bare.search(path.read_text())]
    assert not offenders


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
                pytest.fail(f"import cycle: {' -> '.join([*trail[trail.index(target) :], target])}")
            if target not in state:
                visit(target, [*trail, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def statements(function: ast.AST) -> int:
    """Lines on which a statement of the function starts: its size whatever the formatter does with long calls."""
    return len({node.lineno for node in ast.walk(function) if isinstance(node, ast.stmt)} - {function.lineno})


@pytest.mark.parametrize("path", library_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_module_is_small_and_says_its_job(path):
    source = path.read_text()
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree)
    assert docstring and docstring.splitlines()[0].strip(), f"{path.name} opens without a docstring"
    assert len(source.splitlines()) <= MAX_FILE_LINES
    long = [
        f"{node.name} ({statements(node)} statements)"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and statements(node) > MAX_FUNCTION_STATEMENTS
    ]
    assert not long, f"functions over {MAX_FUNCTION_STATEMENTS} statements: {long}"


def test_the_architecture_page_names_every_module_and_room():
    """A newcomer reads the tree from docs/architecture.md: every room by its folder, every module by its path."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    missing = sorted(
        {f"{room}/" for room in ROOMS if f"{room}/" not in page}
        | {
            str(path.relative_to(ROOT))
            for path in library_files()
            if path.name != "__init__.py" and str(path.relative_to(ROOT)) not in page
        }
    )
    assert not missing, f"docs/architecture.md does not mention {missing}"


def test_cache_file_names_are_defined_once():
    """Every name headstart writes under CACHE/ is a constant of features/files/cachedir.py and nowhere else."""
    names = (
        "features.h5",
        "head.pt",
        "metrics.json",
        "curves.png",
        "calibration.png",
        "sweep.csv",
        ".lock",
        "thumbnails",
    )
    owner = ROOT / "features" / "files" / "cachedir.py"
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in library_files()
        if path != owner
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
        for name in [node.value]
    ]
    assert not offenders, offenders
