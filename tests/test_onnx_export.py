"""ptm_lib.nets.onnx_export: a fine-tuned classifier exported to ONNX, run by onnxruntime, agrees with PyTorch."""
import pytest
import torch

from ptm_lib.nets import onnx_export
from ptm_lib.nets.transformer import TransformerClassifier

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, lang, tok):
    from ptm_lib.text.pretrain import load_pretrained
    lm = load_pretrained("mini_bert")[0]
    torch.manual_seed(0)
    clf = TransformerClassifier.from_lm(lm, 6).eval()
    path = onnx_export.export_onnx(clf, tmp_path_factory.mktemp("onnx") / "clf.onnx")
    return clf, path


def test_onnxruntime_agrees_on_other_batch_sizes_and_lengths(exported, lang, tok):
    clf, path = exported
    for n, seed in [(1, 1), (7, 2)]:
        ids, mask = tok.encode_batch(lang.corpus(n, seed=seed), max_len=32)
        with torch.no_grad():
            ref = clf(ids, mask).numpy()
        out = onnx_export.run_onnx(path, ids, mask)
        assert out.shape == ref.shape and abs(out - ref).max() < 1e-5
        assert (out.argmax(1) == ref.argmax(1)).all()


def test_export_refuses_to_overwrite_and_bad_names(exported, tmp_path):
    clf, path = exported
    with pytest.raises(FileExistsError, match="nothing is overwritten"):
        onnx_export.export_onnx(clf, path)
    with pytest.raises(ValueError, match=".onnx"):
        onnx_export.export_onnx(clf, tmp_path / "model.bin")


def test_input_checks_still_work_outside_export(exported):
    clf, _ = exported
    with pytest.raises(ValueError, match="token ids must be in"):
        clf(torch.tensor([[1, 10_000]]), torch.ones(1, 2, dtype=torch.bool))
