"""Offline: the course runner's kernels (and their child processes) refuse every network connection
but loopback, so a notebook that tries to download fails loudly; `ptm_lib.offline` in-process.
(tests/conftest.py makes the whole test session offline the same way, nbval's kernels included.)"""
import http.server
import socket
import threading
import urllib.error
import urllib.request

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from ptm_lib import course
from ptm_lib.offline import network_disabled

REFUSED = "network access is disabled"


@pytest.fixture
def local_server():
    """An HTTP server on 127.0.0.1 that answers every GET with b"local"."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"local")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_network_disabled_refuses_all_but_loopback(local_server):
    before = socket.socket.connect
    with network_disabled():
        with pytest.raises(urllib.error.URLError, match=f"{REFUSED}.*refused to look up 'example.com'"):
            urllib.request.urlopen("http://example.com/data.bin", timeout=5)
        with pytest.raises(PermissionError, match=f"{REFUSED}.*refused to connect to 10.255.255.1"):
            socket.create_connection(("10.255.255.1", 80), timeout=5)
        with pytest.raises(PermissionError, match=REFUSED):
            socket.getaddrinfo("pypi.org", 443)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, pytest.raises(PermissionError, match=REFUSED):
            udp.sendto(b"x", ("8.8.8.8", 53))                      # a DNS query by hand
        assert urllib.request.urlopen(local_server, timeout=5).read() == b"local"   # loopback works
        assert urllib.request.urlopen(local_server.replace("127.0.0.1", "localhost"), timeout=5).read() == b"local"
    assert socket.socket.connect is before                       # undone after the block


DOWNLOADS = [
    # loopback still works in the kernel (Jupyter itself talks to it over 127.0.0.1)
    "import socket, threading\n"
    "server = socket.create_server(('127.0.0.1', 0))\n"
    "threading.Thread(target=lambda: server.accept()[0].close(), daemon=True).start()\n"
    "socket.create_connection(server.getsockname(), timeout=5).close()",
    # so are processes the kernel starts (joblib workers): they import the same sitecustomize
    "import subprocess, sys\n"
    "child = subprocess.run([sys.executable, '-c', \"import socket; socket.create_connection(('10.1.2.3', 80), 1)\"],\n"
    "                       capture_output=True, text=True)\n"
    f"assert child.returncode != 0 and '{REFUSED}' in child.stderr, child.stderr",
    # a download: the run must fail, saying why
    "import urllib.request\n"
    "urllib.request.urlopen('https://example.com/weights.bin', timeout=10).read()",
]


def test_a_notebook_that_downloads_fails_loudly_under_the_runner(tmp_path):
    nb = new_notebook(cells=[new_code_cell("SMOKE = False\nSEED = 0", metadata={"tags": ["parameters"]}),
                             *map(new_code_cell, DOWNLOADS)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "download.ipynb")
    row = course.run_notebook(tmp_path / "download.ipynb", tmp_path / "out.ipynb", parameters=None,
                              results=tmp_path / "results", smoke=True, timeout=60)
    assert row["status"] == "failed" and REFUSED in row["error"] and "example.com" in row["error"], row
    cells = [c for c in nbformat.read(tmp_path / "out.ipynb", as_version=4).cells if c.cell_type == "code"]
    errors = [any(o.get("output_type") == "error" for o in c.get("outputs", [])) for c in cells[1:]]
    assert errors == [False, False, True], "only the download may fail"
