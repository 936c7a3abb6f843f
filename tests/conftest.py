import pytest
import torch

from ptm_lib.text import LanguageConfig, SyntheticLanguage, WordTokenizer

# The test models are tiny: one thread is fastest, and immune to a busy second core.
torch.set_num_threads(1)


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
