"""similar --html: one row per query, its thumbnail then its neighbours', on the reports' self-contained page
(heads/pages/html_report.py: everything embedded, no script, no network)."""

from __future__ import annotations

from pathlib import Path

from headstart.features.files.atomic import atomic_write
from headstart.features.neighbours.config import SimilarConfig
from headstart.features.neighbours.formats import Neighbour
from headstart.features.neighbours.queries import Queries
from headstart.features.store import FeaturesHeader
from headstart.heads.pages.html_report import Section, Thumb, render_page
from headstart.heads.pages.page import Thumbnails
from headstart.heads.pages.thumbnails import thumbnail


def _caption(record: Neighbour) -> str:
    return f"{record.rank}. {record.split}: {record.path} ({record.similarity:.3f})"


def similar_page(
    config: SimilarConfig, header: FeaturesHeader, queries: Queries, answers: list[list[Neighbour]]
) -> str:
    """The page as one string: a table whose rows are the queries, each followed by its neighbours."""
    cached = Thumbnails(Path(header.data_root), Path(config.cache), config.thumb_size)
    rows: list[list[str | Thumb]] = []
    for name, digest, answer in zip(queries.names, queries.sha256, answers):
        query = Thumb(thumbnail(Path(name), digest or None, Path(config.cache), config.thumb_size), name)
        rows.append([query, *(cached(record.path, None, _caption(record)) for record in answer)])
    width = max((len(answer) for answer in answers), default=0)
    section = Section(
        "Nearest cached images",
        ["query", *(str(rank) for rank in range(1, width + 1))],
        rows,
        note="Cosine similarity of the backbone's features, centred on the mean of the searched rows.",
    )
    lines = [f"{len(queries.names)} queries, the {config.k} nearest each, over {header.backbone} features."]
    warnings = [f"{name}: {reason}" for name, reason in queries.failed]
    return render_page("headstart similar", lines, warnings, [section])


def write_similar_page(
    config: SimilarConfig, header: FeaturesHeader, queries: Queries, answers: list[list[Neighbour]]
) -> None:
    """Write the page into config.html, whole or not at all."""
    page = similar_page(config, header, queries, answers)
    with atomic_write(Path(str(config.html)), "w", encoding="utf-8") as handle:
        handle.write(page)
