import os

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _isolated_results(tmp_path, monkeypatch):
    """Unit tests never write into the real build/results."""
    monkeypatch.setenv("PTM_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.delenv("PTM_DEVICE", raising=False)
    yield
