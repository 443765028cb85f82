"""features/download.py: fetching and unpacking the dataset zip, from a local HTTP server (no internet)."""

from __future__ import annotations

import http.server
import io
import re
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from headstart.features.download import DownloadError, download_dataset

IMAGES = {
    "hymenoptera_data/train/ants/a.jpg": b"\xff\xd8ant-a",
    "hymenoptera_data/train/bees/b.jpg": b"\xff\xd8bee-b",
    "hymenoptera_data/val/ants/c.jpg": b"\xff\xd8ant-c",
    "hymenoptera_data/val/bees/d.jpg": b"\xff\xd8bee-d",
}


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    cut_short: set[str] = set()  # paths whose body stops half-way, as when a connection drops

    def do_GET(self):
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        truncated = self.path in self.cut_short
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if truncated else data)
        if truncated:
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A local HTTP server; put bytes into server.files[path] and fetch server.url(path)."""

    class Handler(_Handler):
        files = {}
        cut_short = set()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.files = Handler.files
    httpd.cut_short = Handler.cut_short
    httpd.url = lambda path: f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def test_download_unpacks_the_dataset(server, tmp_path):
    archive = make_zip(IMAGES)
    server.files["/hymenoptera_data.zip"] = archive
    progress = []
    folder = tmp_path / "cache" / "hymenoptera_data"

    result = download_dataset(
        folder, server.url("/hymenoptera_data.zip"), on_progress=lambda d, t: progress.append((d, t))
    )

    assert result == folder
    assert (folder / "train").is_dir()
    assert (folder / "train" / "ants" / "a.jpg").read_bytes() == b"\xff\xd8ant-a"
    assert (folder / "val" / "bees" / "d.jpg").read_bytes() == b"\xff\xd8bee-d"
    assert progress and progress[-1] == (len(archive), len(archive))
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert leftovers(folder.parent) == ["hymenoptera_data"]  # no scratch folder left beside it


def test_zip_without_an_inner_folder(server, tmp_path):
    server.files["/flat.zip"] = make_zip({name.split("/", 1)[1]: data for name, data in IMAGES.items()})
    folder = download_dataset(tmp_path / "data", server.url("/flat.zip"))
    assert (folder / "train" / "bees" / "b.jpg").is_file()


def test_macos_metadata_folder_is_ignored(server, tmp_path):
    server.files["/mac.zip"] = make_zip({**IMAGES, "__MACOSX/hymenoptera_data/._a.jpg": b"junk"})
    folder = download_dataset(tmp_path / "data", server.url("/mac.zip"))
    assert (folder / "val" / "ants" / "c.jpg").is_file()


def _assert_nothing_left(tmp_path: Path, folder: Path) -> None:
    assert not folder.exists()
    assert leftovers(folder.parent) == []


def test_404_is_a_download_error(server, tmp_path):
    folder = tmp_path / "cache" / "data"
    with pytest.raises(DownloadError) as caught:
        download_dataset(folder, server.url("/missing.zip"))
    message = str(caught.value)
    assert "--data" in message and "Not Found" in message and server.url("/missing.zip") in message
    _assert_nothing_left(tmp_path, folder)


def test_closed_port_is_a_download_error(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path / "data"
    with pytest.raises(DownloadError, match="--data") as caught:
        download_dataset(folder, f"http://127.0.0.1:{port}/data.zip", timeout=5)
    assert "refused" in str(caught.value).lower()
    _assert_nothing_left(tmp_path, folder)


def test_a_body_cut_short_is_a_download_error_that_says_so(server, tmp_path):
    server.files["/data.zip"] = make_zip(IMAGES)
    server.cut_short.add("/data.zip")
    folder = tmp_path / "data"
    with pytest.raises(DownloadError, match="--data") as caught:
        download_dataset(folder, server.url("/data.zip"), timeout=5)
    # The connection dropped: saying "not a zip file" would send the user after the wrong problem.
    assert re.search(r"incomplete|truncated|cut short|\d+ of \d+ bytes", str(caught.value)), str(caught.value)
    _assert_nothing_left(tmp_path, folder)


def test_not_a_zip_is_a_download_error(server, tmp_path):
    server.files["/page.zip"] = b"<html>captive portal: please log in</html>"
    folder = tmp_path / "data"
    with pytest.raises(DownloadError, match="--data"):
        download_dataset(folder, server.url("/page.zip"))
    _assert_nothing_left(tmp_path, folder)


def test_zip_without_train_is_a_download_error(server, tmp_path):
    server.files["/other.zip"] = make_zip({"stuff/readme.txt": b"hello", "stuff/val/ants/c.jpg": b"x"})
    folder = tmp_path / "data"
    with pytest.raises(DownloadError, match="no train/ folder"):
        download_dataset(folder, server.url("/other.zip"))
    _assert_nothing_left(tmp_path, folder)


@pytest.mark.parametrize("evil", ["../evil.txt", "hymenoptera_data/../../evil.txt", "/tmp/headstart-evil.txt"])
def test_zip_with_a_member_outside_the_folder_is_refused(server, tmp_path, evil):
    server.files["/evil.zip"] = make_zip({**IMAGES, evil: b"owned"})
    work = tmp_path / "work"
    folder = work / "data"
    with pytest.raises(DownloadError, match="unsafe path"):
        download_dataset(folder, server.url("/evil.zip"))
    _assert_nothing_left(tmp_path, folder)
    assert not list(tmp_path.rglob("evil.txt"))
    assert not Path("/tmp/headstart-evil.txt").exists()
