"""suggest --html: the images to label next, best first, each with its thumbnail, the head's class, its score and
why it was chosen, on the reports' self-contained page (heads/pages/html_report.py)."""

from __future__ import annotations

from pathlib import Path

from headstart.features.files.atomic import atomic_write
from headstart.features.provenance import RANDOM
from headstart.features.store import FeaturesHeader
from headstart.heads.pages.html_report import Section, Thumb, render_page
from headstart.heads.pages.page import Thumbnails
from headstart.heads.pages.thumbnails import thumbnail
from headstart.heads.suggest.config import SuggestConfig
from headstart.heads.suggest.formats import Suggestion

SCORE_SENTENCES = {
    "margin": "score: 1 minus the gap between the head's two most likely classes; 1 means a tie.",
    "entropy": "score: how evenly the head spreads its belief over the classes, from 0 (sure) to 1 (uniform).",
    "diversity": "score: the distance to the nearest labelled image or earlier suggestion (centred unit features).",
    "unknown": "score: the head's unknown-image score; higher is less like anything labelled.",
    "combined": "score: the distance to the nearest labelled image or earlier suggestion, times the margin score.",
    "random": "score: none; the images are in a seeded random order, the control for the other strategies.",
}
WEIGHTS_WARNING = (
    "these features come from a backbone without pretrained weights: suggestions reflect colours and textures, "
    "not what the images show"
)


def suggestions_page(
    config: SuggestConfig, header: FeaturesHeader, from_pool: bool, suggestions: list[Suggestion]
) -> str:
    """The page as one string: one row per suggestion, best first."""
    cached = Thumbnails(Path(header.data_root), Path(config.cache), config.thumb_size)

    def image(record: Suggestion) -> Thumb:
        if from_pool:
            return cached(record.path, record.sha256 or None)
        full = Path(record.path).absolute()
        return Thumb(
            thumbnail(full, record.sha256 or None, Path(config.cache), config.thumb_size), record.path, full.as_uri()
        )

    rows: list[list[str | Thumb]] = [
        [
            str(record.rank),
            image(record),
            record.suggested,
            f"{record.confidence:.3f}",
            f"{record.score:.3f}",
            record.why,
        ]
        for record in suggestions
    ]
    section = Section(
        "Label these next",
        ["rank", "image", "head's class", "confidence", "score", "why"],
        rows,
        note=f"Strategy {config.strategy}. {SCORE_SENTENCES[config.strategy]} Confidence: the head's top probability.",
    )
    source = "the unlabeled pool" if from_pool else ", ".join(map(str, config.folders))
    lines = [f"{len(suggestions)} images of {source} to label next, over {header.backbone} features."]
    warnings = [WEIGHTS_WARNING] if header.weights.kind == RANDOM else []
    return render_page("headstart suggest", lines, warnings, [section], interactive=True)


def write_suggestions_page(
    config: SuggestConfig, header: FeaturesHeader, from_pool: bool, suggestions: list[Suggestion]
) -> None:
    """Write the page into config.html, whole or not at all."""
    page = suggestions_page(config, header, from_pool, suggestions)
    with atomic_write(Path(str(config.html)), "w", encoding="utf-8") as handle:
        handle.write(page)
