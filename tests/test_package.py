"""The installed package: a wheel built from the checkout holds one import package, `headstart`, with every room of
the tree and nothing else (no top-level cli, features or heads; no tests or bench); both entry points run."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

SKIP = shutil.ignore_patterns(".git", ".venv", "cache", "build", "site", "*.egg-info", "__pycache__", ".pytest_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "checkout"
    shutil.copytree(ROOT, source, ignore=SKIP)  # tests/ and bench/ included: the wheel must leave them out
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", work / "dist", source],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (built,) = (work / "dist").glob("headstart-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_has_one_top_level_package(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"headstart"}
    assert "headstart/cli.py" in wheel.namelist() and "headstart/api.py" in wheel.namelist()
    assert not [name for name in wheel.namelist() if name.startswith(("headstart/tests/", "headstart/bench/"))]


def test_the_wheel_holds_every_module_of_the_tree(wheel):
    packaged = {name for name in wheel.namelist() if name.endswith(".py")}
    rooms = ("console", "features", "heads")
    tree = {f"headstart/{path.relative_to(ROOT)}" for room in rooms for path in (ROOT / room).rglob("*.py")}
    tree |= {f"headstart/{name}" for name in ("__init__.py", "__main__.py", "cli.py", "api.py")}
    assert tree - packaged == set()  # a sub-package setup.cfg does not list would be missing here


def test_the_console_script_is_headstart_cli_main(wheel):
    (entry_points,) = [name for name in wheel.namelist() if name.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(entry_points).decode())
    assert dict(parser["console_scripts"]) == {"headstart": "headstart.cli:main"}


@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, str(ROOT / "cli.py")],
        [str(Path(sys.executable).parent / "headstart")],
        [sys.executable, "-m", "headstart"],
    ],
    ids=["python cli.py", "headstart", "python -m headstart"],
)
def test_every_way_in_runs_the_same_cli(argv, tmp_path):
    done = subprocess.run([*argv, "--version"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "headstart, version 0.1.0"
