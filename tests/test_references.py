"""ptm_lib.references: every entry is complete, and every corrected essay citation names one."""
import re

import pytest

from ptm_lib.references import ESSAY_CITATIONS, REFERENCES, cite


def test_entries_are_complete_and_identifiable():
    ids = [r["id"] for r in REFERENCES.values()]
    assert len(set(ids)) == len(ids)
    for key, r in REFERENCES.items():
        assert set(r) == {"authors", "year", "title", "venue", "id"}, key
        assert re.match(r"^(arXiv:\d{4}\.\d{4,5}|doi:10\.\S+|ISBN [\d-]{10,17})$", r["id"]), (key, r["id"])


def test_the_essay_citations_point_to_the_right_titles():
    keys = {key for _, _, key, _ in ESSAY_CITATIONS}
    assert keys <= set(REFERENCES)
    assert REFERENCES["bert"]["title"].startswith("BERT: Pre-training of Deep Bidirectional Transformers")
    assert REFERENCES["imagenet"]["title"] == "ImageNet: A Large-Scale Hierarchical Image Database"
    assert REFERENCES["transformer"]["title"] == "Attention Is All You Need"
    for _, printed, key, _ in ESSAY_CITATIONS:
        assert REFERENCES[key]["title"] not in printed       # what the essay printed was not the title


def test_cite_formats_and_refuses_unknown_keys():
    assert cite("lora").startswith("Hu et al. (2022). *LoRA:")
    with pytest.raises(KeyError, match="known"):
        cite("gpt5")
