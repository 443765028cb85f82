"""The predict step in one call: image files and folders -> the head in the cache -> the predictions file."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from headstart.features.engines.batches import ProgressCallback
from headstart.features.files.cachedir import HEAD_FILE
from headstart.features.files.outputs import Output, check_outputs
from headstart.features.folder import SKIP_KINDS, DatasetError, count_kinds, scan_images, text_path
from headstart.heads.config import PredictConfig
from headstart.heads.predict.predictor import Predictor
from headstart.heads.predict.resume import open_partial
from headstart.heads.predict.writer import write_predictions
from headstart.heads.trust.unknown import drift_warning


@dataclass(frozen=True)
class PredictSummary:
    """Where the predictions went, how many images were labelled or could not be read, and the files not read."""

    out: str
    predicted: int
    failed: int
    flagged: int = 0
    unknown_rate: float | None = None  # None: the head carries no unknown-image model (why: no_unknown)
    skipped: tuple[tuple[str, str], ...] = ()  # files in the folders that are not images, with why
    failed_kinds: dict[str, int] = field(default_factory=dict)  # the failed images by kind (folder.SKIP_KINDS)
    resumed: int = 0  # rows an interrupted run had finished, reused from its partial file (heads/predict/resume.py)
    no_unknown: str = ""  # why the head carries no unknown-image model (HeadCheckpoint.no_unknown_reason)

    @property
    def not_read(self) -> dict[str, int]:
        """Every file not read (failed images and skipped files) counted by kind."""
        skipped = count_kinds(list(self.skipped))
        counts = {kind: skipped.get(kind, 0) + self.failed_kinds.get(kind, 0) for kind in SKIP_KINDS}
        return {kind: count for kind, count in counts.items() if count}

    @property
    def drift(self) -> str | None:
        """One line when far more images were flagged than the head's threshold flags of images like its own."""
        return drift_warning(self.flagged, self.predicted, self.unknown_rate) if self.unknown_rate else None


def predict_files(
    paths: list[str | os.PathLike],
    out: str | os.PathLike,
    cache: str | os.PathLike,
    config: PredictConfig = PredictConfig(),
    *,
    output_format: str = "csv",
    top_k: int = 1,
    reject_unknown: bool = False,
    on_progress: ProgressCallback | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> PredictSummary:
    """Label every image in paths (files, or folders searched recursively) into out ('-': stdout); with
    reject_unknown, images the head's unknown-image model flags are labelled `unknown`. An interrupted run into the
    same file, with the same head and inputs, is resumed: its finished rows are reused."""
    check_outputs(cache, Output("--out", Path(out), streamed=True))
    predictor = Predictor.load(Path(cache) / HEAD_FILE, config, on_warning)
    thresholds = predictor.checkpoint.thresholds
    entries, skipped = scan_images(list(paths))
    if not entries:
        others = f" ({len(skipped)} other file(s): {skipped[0][1]})" if skipped else ""
        raise DatasetError(f"no images found in {', '.join(map(text_path, paths))}{others}")
    backbone = {"weights": predictor.backbone.identity.to_dict(), "preprocessing": predictor.preprocessing.describe()}
    partial = open_partial(out, Path(cache) / HEAD_FILE, backbone, entries, len(predictor.classes))
    done = partial.done if partial else []
    keep = True
    try:
        with closing(predictor.predict(entries[len(done) :], on_progress)) as fresh:
            predictions = partial.chain(fresh) if partial else fresh
            counts = write_predictions(
                out, predictor.classes, predictions, output_format, top_k, reject_unknown, thresholds
            )
        keep = False
    except Exception:
        keep = False  # a failed run (a full disk, say) leaves nothing behind; only an interrupted one is resumed
        raise
    finally:
        if partial:  # kept when the run was interrupted (a signal, Ctrl-C): the next one resumes from its rows
            partial.close(complete=not keep)
    return PredictSummary(
        str(out),
        counts["predicted"],
        counts["failed"],
        counts["flagged"],
        predictor.unknown_rate,
        tuple(skipped),
        counts["failed_kinds"],
        len(done),
        predictor.checkpoint.no_unknown_reason if predictor.checkpoint.unknown is None else "",
    )
