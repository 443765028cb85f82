"""The backbones command: every entry of the registry, as a table or JSON."""

from __future__ import annotations

import click

from headstart.console.errors import errors_as_exit_codes
from headstart.console.reporter import Reporter


@click.command("backbones")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def backbones_command(ctx: click.Context, as_json: bool) -> None:
    """Every backbone extract --backbone takes: feature width, input size, GFLOPs, preprocessing, default weights,
    whether cached; and timm:MODEL, with whether timm is installed."""
    from headstart.console.views import show_backbones
    from headstart.features.backbones.listing import describe_backbones

    with errors_as_exit_codes():
        show_backbones(ctx.ensure_object(Reporter), describe_backbones(), as_json)
