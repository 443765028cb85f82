"""How the export command's result is shown: the files written and how closely they agree with predict."""

from __future__ import annotations

from headstart.console.reporter import Reporter


def show_export(report: Reporter, summary) -> None:
    """One line: the files, their size, and the largest difference from predict over the images checked."""
    files = ", ".join(f"{path} ({size / 1e6:.1f} MB)" for path, size in zip(summary.paths, summary.sizes))
    report.note(
        f"{summary.format} -> {files}: equal to predict on {summary.images} images within "
        f"{summary.difference:.2g} (tolerance {summary.tolerance:g}), in {summary.seconds:.1f} s"
    )
