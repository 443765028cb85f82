"""features.atomic: outputs replaced whole or not at all, with their usual permissions; signals held where needed."""

from __future__ import annotations

import os
import signal

import pytest

from headstart.features.files.atomic import atomic_write, replace_together, signals_held


def leftovers(folder) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".tmp"))


def test_atomic_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with atomic_write(path, "w") as out:
        out.write("new")
        assert path.read_text() == "old"  # nothing visible until the block ends
    assert path.read_text() == "new"
    assert leftovers(tmp_path) == []


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as out:
            out.write("half")
            raise RuntimeError("disk gone")
    assert path.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_a_new_file_gets_the_mode_an_ordinary_write_would(tmp_path):
    umask = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "new.bin") as out:
            out.write(b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "new.bin").stat().st_mode & 0o777 == 0o640


def test_an_existing_file_keeps_its_mode(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    path.chmod(0o604)
    with atomic_write(path) as out:
        out.write(b"new")
    assert path.stat().st_mode & 0o777 == 0o604


def test_replace_together_is_all_or_nothing(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b" / "c"  # a missing parent folder is created
    first.write_text("old a")
    with pytest.raises(KeyboardInterrupt):
        with replace_together(first, second) as (tmp_a, tmp_b):
            tmp_a.write_text("new a")
            raise KeyboardInterrupt
    assert first.read_text() == "old a" and not second.exists()
    with replace_together(first, second) as (tmp_a, tmp_b):
        tmp_a.write_text("new a")
        tmp_b.write_text("new c")
    assert (first.read_text(), second.read_text()) == ("new a", "new c")
    assert leftovers(tmp_path) == leftovers(second.parent) == []


def test_signals_held_delivers_the_signal_after_the_block(tmp_path):
    # Python's own SIGINT handler, whatever this process inherited: a shell starts a background job with SIGINT
    # ignored, and then no KeyboardInterrupt could come (this failed in a suite run started with `&`).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        done = []
        with pytest.raises(KeyboardInterrupt):
            with signals_held():
                signal.raise_signal(signal.SIGINT)
                done.append("the block ran to its end")
        assert done == ["the block ran to its end"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)
