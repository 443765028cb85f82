"""The info command: what CACHE holds (splits, counts per class, backbone, weights, preprocessing, head metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from headstart.console.errors import errors_as_exit_codes
from headstart.console.options import cache_option, quiet_option
from headstart.console.reporter import Reporter


@click.command("info")
@cache_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--backbone", default=None, help="Describe this backbone's features only  [default: every backbone's CACHE holds]"
)
@quiet_option
@click.pass_context
def info_command(ctx: click.Context, cache: Path, as_json: bool, backbone: str | None) -> None:
    """What CACHE holds: splits, counts per class, backbone, weights, preprocessing, head metrics."""
    report = ctx.ensure_object(Reporter)
    with errors_as_exit_codes():
        from headstart.console.views import show_info
        from headstart.heads.info import describe_cache

        described = describe_cache(cache, backbone)
        if as_json:
            click.echo(json.dumps(described, indent=2, allow_nan=False))
        else:
            show_info(report, cache, described)
