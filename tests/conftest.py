import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from ptm_lib import offline
from ptm_lib.text import LanguageConfig, SyntheticLanguage, WordTokenizer

# The test models are tiny: one thread is fastest, and immune to a busy second core.
torch.set_num_threads(1)

# The whole test session is offline: this process and every process it starts (the notebook kernels
# of the course runner and of nbval, pip, ...) refuse network connections except to loopback.
_HOOK = tempfile.mkdtemp(prefix="ptm-offline-")
atexit.register(shutil.rmtree, _HOOK, ignore_errors=True)
shutil.copyfile(offline.__file__, Path(_HOOK) / "sitecustomize.py")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_HOOK, os.environ.get("PYTHONPATH")) if p)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
offline.disable_network()


@pytest.fixture(scope="session")
def lang():
    """The default synthetic language (seed 0)."""
    return SyntheticLanguage(LanguageConfig(seed=0))


@pytest.fixture(scope="session")
def tok(lang):
    """The word tokenizer of `lang`."""
    return WordTokenizer.from_language(lang)


@pytest.fixture(autouse=True)
def _isolated_results(tmp_path, monkeypatch):
    """Unit tests never write into the real build/results."""
    monkeypatch.setenv("PTM_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.delenv("PTM_DEVICE", raising=False)
    yield
