"""`make lab NO_BROWSER=1` starts a JupyterLab server that serves the course notebooks."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ptm_lib.report import repo_root

ROOT = repo_root()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
                    reason="needs the course's .venv (run through `make test`)")
def test_make_lab_serves_the_notebooks():
    port, token = _free_port(), "ptm-test-token"
    proc = subprocess.Popen(["make", "lab", "NO_BROWSER=1", f"PORT={port}",
                             f"LAB_ARGS=--IdentityProvider.token={token} --ServerApp.port_retries=0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        listing, deadline = None, time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents/?token={token}", timeout=2) as r:
                    listing = json.load(r)
                break
            except OSError:
                time.sleep(0.5)
        assert listing is not None, f"JupyterLab did not answer: {proc.stdout.read1().decode() if proc.poll() is not None else 'still starting'}"
        names = {item["name"] for item in listing["content"]}
        assert {p.name for p in (ROOT / "notebooks").glob("*.ipynb")} <= names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab/tree/00_start_here.ipynb?token={token}", timeout=5) as r:
            assert r.status == 200 and b"JupyterLab" in r.read()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
