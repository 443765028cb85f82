"""Helpers the CLI tests share: invoke a command in-process, and check a clean success or a clean failure."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner, Result

from headstart import cli


def run(*args, env: dict | None = None) -> Result:
    return CliRunner().invoke(cli.cli, [str(arg) for arg in args], env=env)


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, result.output
    assert result.exception is None, result.output


def assert_error(result: Result, *fragments: str, code: int = 1) -> str:
    """A clean failure: the exit code, no traceback, exactly one `Error:` line holding every fragment."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}\n{result.output}"
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
