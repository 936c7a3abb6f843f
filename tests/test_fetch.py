"""`ptm_lib.data.fetch` against a local HTTP server on 127.0.0.1 that injects faults: server errors,
a connection cut mid-file, a server that ignores Range, a stall, a wrong file; and offline use."""
import hashlib
import http.server
import threading

import pytest

from ptm_lib import data
from ptm_lib.offline import network_disabled

PAYLOAD = bytes(range(256)) * 1200                      # 300 kB
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves PAYLOAD at /file.bin; each request takes the next behaviour from `plan` ("ok" when empty):
    "ok" (honours Range), "503", "404", "cut" (announces everything, sends half, closes),
    "ignore-range" (always the whole file, status 200), "stall" (waits 2 s before answering)."""

    def __init__(self):
        self.plan, self.requests = [], []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                behaviour = server.plan.pop(0) if server.plan else "ok"
                server.requests.append((behaviour, self.headers.get("Range")))
                if behaviour in ("503", "404"):
                    self.send_error(int(behaviour))
                    return
                if behaviour == "stall":
                    threading.Event().wait(2)       # (time.sleep is the test's fake)
                start = 0
                if self.headers.get("Range") and behaviour == "ok":
                    start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
                body = PAYLOAD[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                try:
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[:len(body) // 2] if behaviour == "cut" else body)
                except (BrokenPipeError, ConnectionResetError):    # the client gave up on a stall
                    return
                if behaviour == "cut":
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file.bin"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def sleeps(monkeypatch):
    """The backoff delays fetch asked for (nobody waits)."""
    delays = []
    monkeypatch.setattr(data.time, "sleep", delays.append)
    return delays


def test_download_is_verified_and_appears_atomically(server, tmp_path, sleeps):
    with network_disabled():                          # loopback only: this really is a local server
        dest = data.fetch(server.url, tmp_path / "cache" / "file.bin", DIGEST)
    assert dest.read_bytes() == PAYLOAD and sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]
    assert server.requests == [("ok", None)] and sleeps == []


def test_server_errors_are_retried_with_exponential_backoff(server, tmp_path, sleeps):
    server.plan = ["503", "503", "503"]
    data.fetch(server.url, tmp_path / "file.bin", DIGEST, backoff=0.5)
    assert [b for b, _ in server.requests] == ["503", "503", "503", "ok"] and sleeps == [0.5, 1.0, 2.0]


def test_a_broken_download_continues_where_it_stopped(server, tmp_path, sleeps):
    server.plan = ["cut"]
    assert data.fetch(server.url, tmp_path / "file.bin", DIGEST).read_bytes() == PAYLOAD
    assert server.requests == [("cut", None), ("ok", f"bytes={len(PAYLOAD) // 2}-")]   # only the rest again


def test_a_server_that_ignores_range_sends_it_all_again(server, tmp_path, sleeps):
    server.plan = ["cut", "ignore-range"]
    assert data.fetch(server.url, tmp_path / "file.bin", DIGEST).read_bytes() == PAYLOAD
    assert [b for b, _ in server.requests] == ["cut", "ignore-range"]


def test_a_stalled_server_times_out_and_is_retried(server, tmp_path, sleeps):
    server.plan = ["stall"]
    assert data.fetch(server.url, tmp_path / "file.bin", DIGEST, timeout=0.3).read_bytes() == PAYLOAD
    assert [b for b, _ in server.requests] == ["stall", "ok"] and len(sleeps) == 1


def test_giving_up_says_why_and_keeps_nothing_at_dest(server, tmp_path, sleeps):
    server.plan = ["503"] * 3
    with pytest.raises(ConnectionError, match=r"could not download .*file.bin \(HTTPError: HTTP Error 503.*after "
                                              r"3 attempt\(s\).*copy the file to .* by hand"):
        data.fetch(server.url, tmp_path / "file.bin", DIGEST, retries=2)
    assert not (tmp_path / "file.bin").exists() and len(sleeps) == 2
    server.plan = ["404"]
    with pytest.raises(ConnectionError, match=r"HTTP Error 404.*after 1 attempt\(s\)"):   # not worth retrying
        data.fetch(server.url, tmp_path / "file.bin", DIGEST)


def test_a_wrong_file_is_never_saved(server, tmp_path, sleeps):
    with pytest.raises(ValueError, match="sha256 mismatch .*nothing was saved"):
        data.fetch(server.url, tmp_path / "file.bin", "0" * 64)
    assert list(tmp_path.iterdir()) == []                     # no file, no partial download


def test_works_offline_from_the_cache(server, tmp_path, sleeps):
    dest = data.fetch(server.url, tmp_path / "file.bin", DIGEST)
    server.close()
    with network_disabled():
        assert data.fetch("https://example.com/file.bin", dest, DIGEST) == dest   # a cache hit: no network
        with pytest.raises(ConnectionError, match=r"network access is disabled.*after 1 attempt"):
            data.fetch("https://example.com/other.bin", tmp_path / "other.bin", DIGEST)   # refused: no retry
    assert sleeps == []
    dest.write_bytes(PAYLOAD[:-1] + b"!")                          # the cache is checked too
    with pytest.raises(ValueError, match="sha256 mismatch for .*file.bin"):
        data.fetch(server.url, dest, DIGEST)
