"""features.lock: one command per cache folder; the second is refused at once, naming the holder."""

from __future__ import annotations

import os

import pytest

from headstart.features.files.cachedir import LOCK_FILE
from headstart.features.files.lock import CacheBusyError, cache_lock


def test_the_lock_creates_the_folder_and_records_its_holder(tmp_path):
    folder = tmp_path / "new" / "cache"
    with cache_lock(folder, "extract"):
        assert (folder / LOCK_FILE).read_text() == f"`extract` (pid {os.getpid()})"
    assert (folder / LOCK_FILE).read_text() == ""  # released: no stale holder left behind


def test_a_second_holder_is_refused_with_the_first_ones_name(tmp_path):
    with cache_lock(tmp_path, "extract"):
        with pytest.raises(CacheBusyError) as refused:
            with cache_lock(tmp_path, "train-head"):
                pytest.fail("two holders at once")
    assert str(refused.value) == (
        f"{tmp_path} is in use by `extract` (pid {os.getpid()}): wait for it to finish, or use another --cache folder"
    )


def test_the_lock_is_released_on_error(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with cache_lock(tmp_path, "extract"):
            raise RuntimeError("boom")
    with cache_lock(tmp_path, "predict"):
        assert "`predict`" in (tmp_path / LOCK_FILE).read_text()
