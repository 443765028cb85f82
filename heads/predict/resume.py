"""The rows an interrupted predict had done, kept beside its output so the next run resumes from them.

File: `.<OUT's name>.headstart-partial` (`.<sha256 of the name, 32 hex>.headstart-partial` when that would be
longer than a file name may be), in OUT's folder (only for an --out that is a regular file: stdout, a
device or a pipe is a stream, and a stream cannot be resumed). JSON Lines, UTF-8:

    line 1   {"format": "headstart-predict-partial", "format_version": 1, "producer": "headstart X.Y",
              "key": sha256 hex}
    then     one line per image done, in predict's order (sorted by path):
             {"path": str, "probabilities": [float, one per class] | null, "ood_score": float | null,
              "unknown": bool | null, "error": str | null}

`key` is the sha256 of what the rows depend on: OUT's resolved path, the head file's bytes, the backbone's weights
and preprocessing, and every input image's name, size and modification time, in order. A run whose key differs
starts from zero (and writes its own partial over the old one). The file is untrusted input: reading stops at the
first line that is not a complete, valid record for the next image (an interrupt may cut the last line short), and
only those rows are reused. The partial is removed once OUT is complete, or when the
run fails (an error, not an interrupt: a full disk must not keep it); the rows are written the moment they
are computed, so an interrupt (or a kill) loses at most the batch in flight.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from headstart.features.files.outputs import STDOUT, special_kind
from headstart.features.files.regular import UnsafeFileError, open_regular
from headstart.features.folder import ImageEntry
from headstart.heads.predict.writer import Prediction

FORMAT = "headstart-predict-partial"
FORMAT_VERSION = 1
SUFFIX = ".headstart-partial"
NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems
MAX_LINE = 1 << 20  # a record is a path and one float per class: a longer line is not one of ours


def partial_path(out: str | os.PathLike) -> Path | None:
    """Where the partial rows of out are kept; None when out is a stream (stdout, a device, a pipe)."""
    if str(out) == STDOUT or special_kind(out) is not None:
        return None
    out = Path(out)
    name = f".{out.name}{SUFFIX}"
    if len(os.fsencode(name)) > NAME_MAX:  # an output name near the limit: a fixed-length name derived from it
        name = f".{hashlib.sha256(os.fsencode(out.name)).hexdigest()[:32]}{SUFFIX}"
    return out.parent / name


def resume_key(out: str | os.PathLike, head_file: Path, backbone: dict, entries: list[ImageEntry]) -> str:
    """The sha256 of what the rows depend on: the output, the head, the backbone and the inputs as they are now."""
    digest = hashlib.sha256()
    digest.update(json.dumps([os.path.realpath(out), backbone]).encode())
    digest.update(hashlib.sha256(head_file.read_bytes()).digest())
    for entry in entries:
        try:
            stat = os.stat(entry.path)
            stamp = [stat.st_size, stat.st_mtime_ns]
        except OSError:
            stamp = None
        digest.update(json.dumps([entry.name, stamp]).encode())
    return digest.hexdigest()


def _record(prediction: Prediction) -> dict:
    probabilities = None if prediction.probabilities is None else [float(p) for p in prediction.probabilities]
    return {
        "path": prediction.path,
        "probabilities": probabilities,
        "ood_score": prediction.ood_score,
        "unknown": prediction.unknown,
        "error": prediction.error,
    }


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _prediction(line: str, name: str, classes: int) -> Prediction | None:
    """The record of line for the image named name, or None when it is not a valid one."""
    import numpy as np

    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("path") != name:
        return None
    probabilities, error = record.get("probabilities"), record.get("error")
    ood_score, unknown = record.get("ood_score"), record.get("unknown")
    if probabilities is None:
        return Prediction(name, None, error) if isinstance(error, str) else None
    valid = (
        isinstance(probabilities, list)
        and len(probabilities) == classes
        and all(_number(p) and 0 <= p <= 1 for p in probabilities)
        and (ood_score is None or _number(ood_score))
        and (unknown is None or isinstance(unknown, bool))
        and error is None
    )
    return Prediction(name, np.asarray(probabilities, dtype=np.float32), None, ood_score, unknown) if valid else None


def read_partial(path: Path, key: str, entries: list[ImageEntry], classes: int) -> list[Prediction]:
    """The rows a previous run with this key finished, for the first entries in order; [] when there are none."""
    try:
        descriptor = open_regular(path, follow=False)
    except (OSError, UnsafeFileError):
        return []
    done: list[Prediction] = []
    with os.fdopen(descriptor, encoding="utf-8", errors="replace") as handle:
        lines = iter(lambda: handle.readline(MAX_LINE), "")
        try:
            header = json.loads(next(lines, ""))
        except ValueError:
            return []
        if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("key") != key:
            return []
        for line, entry in zip(lines, entries):
            prediction = _prediction(line, entry.name, classes) if line.endswith("\n") else None
            if prediction is None:
                break
            done.append(prediction)
    return done


class PartialRows:
    """The partial file of one run: the rows done before, then each new row appended as it comes."""

    def __init__(self, path: Path, key: str, producer: str, done: list[Prediction]) -> None:
        # Rewritten first: only the valid rows of the previous run stay, under this run's header. Not through
        # atomic.py: a partial file is never a result (the reader checks every line, so a cut one costs nothing).
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        self._handle = os.fdopen(open_regular(path, flags, 0o600, follow=False), "w", encoding="utf-8")
        header = {"format": FORMAT, "format_version": FORMAT_VERSION, "producer": producer, "key": key}
        try:
            self._handle.write(json.dumps(header) + "\n")
            self._handle.writelines(json.dumps(_record(row), ensure_ascii=False) + "\n" for row in done)
            self._handle.flush()
        except OSError:
            self.path = path
            self.close(complete=True)
            raise
        self.path = path
        self.done = done

    def chain(self, fresh: Iterable[Prediction]) -> Iterator[Prediction]:
        """The rows done before, then fresh ones, each written to the partial file as it passes."""
        yield from self.done
        for prediction in fresh:
            self._handle.write(json.dumps(_record(prediction), ensure_ascii=False, allow_nan=False) + "\n")
            self._handle.flush()
            yield prediction

    def close(self, complete: bool) -> None:
        """Close the file; once the output is complete it is removed, else kept for the next run."""
        try:
            self._handle.close()
        except OSError:  # the last rows could not be flushed (a full disk): the rows before them still count
            pass
        if complete:
            self.path.unlink(missing_ok=True)


def open_partial(
    out: str | os.PathLike, head_file: Path, backbone: dict, entries: list[ImageEntry], classes: int
) -> PartialRows | None:
    """The partial rows for this run of predict (those a previous run with the same key finished reused), or None
    when out is a stream or its folder is missing (the output's own error says so)."""
    from headstart.features import __version__

    path = partial_path(out)
    if path is None or not path.parent.is_dir():
        return None
    key = resume_key(out, head_file, backbone, entries)
    done = read_partial(path, key, entries, classes)
    try:
        return PartialRows(path, key, f"headstart {__version__}", done)
    except (OSError, UnsafeFileError):  # no room for it (a full disk, a read-only folder): predict runs without
        return None
