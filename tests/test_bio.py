"""ptm_lib.bio: synthetic promoters, the k-mer baseline, the DNA language model and its checkpoint."""
import numpy as np
import pytest
import torch

from ptm_lib.bio import convlm, dna
from ptm_lib.bio.pretrain import NAME, SHIPPED_SHA256, box_accuracy, corpus_tensors, load_dna_lm, pretrain_dna_lm
from ptm_lib.data import sha256_file
from ptm_lib.paths import data_dir
from ptm_lib.text.finetune import make_classifier, random_encoder, run_strategy




def test_each_class_has_its_boxes_at_its_spacing():
    rng = np.random.default_rng(0)
    cfg = dna.PromoterConfig(match=1.0)                 # perfect boxes: readable back from the text
    for label, name in enumerate(dna.CLASSES):
        for _ in range(20):
            text, boxes = dna.promoter_sequence(label, rng, cfg, with_boxes=True)
            seq = "".join(text.split())
            assert len(seq) == cfg.length and set(seq) <= set("ACGT")
            starts = [i for i in range(len(boxes)) if boxes[i] and (i == 0 or not boxes[i - 1])]
            if name in dna.SPACERS:
                assert len(starts) == 2
                assert seq[starts[0]:starts[0] + 6] == dna.BOX_35 and seq[starts[1]:starts[1] + 6] == dna.BOX_10
                assert starts[1] - starts[0] - 6 in dna.SPACERS[name]
            elif name == "-10 only":
                assert len(starts) == 1 and seq[starts[0]:starts[0] + 6] == dna.BOX_10
            else:
                assert not boxes.any()


def test_noisy_boxes_match_the_consensus_at_the_configured_rate():
    rng = np.random.default_rng(1)
    cfg = dna.PromoterConfig(match=0.8)
    hits = total = 0
    for _ in range(300):
        text, boxes = dna.promoter_sequence(2, rng, cfg, with_boxes=True)
        seq = "".join(text.split())
        start = int(np.flatnonzero(boxes)[0])
        hits += sum(a == b for a, b in zip(seq[start:start + 6], dna.BOX_10))
        total += 6
    assert abs(hits / total - 0.8) < 0.03


def test_task_is_deterministic_balanced_with_true_test_labels():
    a, b = dna.make_promoter_task(seed=3, pool_per_class=20, test_per_class=10), dna.make_promoter_task(seed=3, pool_per_class=20, test_per_class=10)
    assert a.train_texts == b.train_texts and (a.train_labels == b.train_labels).all()
    assert np.bincount(a.test_labels).tolist() == [10] * 4
    assert dna.make_promoter_task(seed=4, pool_per_class=20).train_texts != a.train_texts
    assert not set(a.test_texts) & set(dna.promoter_corpus(500, seed=1))


def test_kmer_counts_count_every_window():
    counts = dna.kmer_counts(["A C G T A C", "A A"], k=2)
    assert counts.shape == (2, 16) and counts[0].sum() == 5 and counts[1].sum() == 1
    assert counts[0][0 * 4 + 1] == 2          # "AC" twice
    assert counts[1][0] == 1                  # "AA"
    with pytest.raises(ValueError, match="k must be"):
        dna.kmer_counts(["A"], k=0)


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="label must be"):
        dna.promoter_sequence(7, np.random.default_rng(0))
    with pytest.raises(ValueError, match="length must be"):
        dna.PromoterConfig(length=20)
    with pytest.raises(ValueError, match="kernel must be odd"):
        convlm.ConvLMConfig(vocab_size=9, kernel=4)
    with pytest.raises(ValueError, match="token ids"):
        convlm.ConvLM(convlm.ConvLMConfig(vocab_size=9))(torch.full((1, 5), 12))


def test_conv_lm_shapes_padding_and_receptive_field():
    cfg = convlm.ConvLMConfig(vocab_size=9, d_model=16, n_layers=4, kernel=5)
    assert cfg.receptive_field == 61
    model = convlm.ConvLM(cfg).eval()
    ids = torch.randint(5, 9, (3, 12))
    assert model(ids).shape == (3, 12, 9)
    padded = torch.cat([ids, torch.zeros(3, 4, dtype=torch.long)], 1)
    mask = padded != 0
    clf = convlm.ConvLMClassifier.from_lm(model, 4).eval()
    with torch.no_grad():   # padding changes nothing at real positions nor in the pooled features
        assert torch.allclose(model.encode(padded, mask)[:, :12], model.encode(ids), atol=1e-5)
        assert torch.allclose(clf.features(padded, mask), clf.features(ids), atol=1e-5)
    assert torch.equal(clf.body.embed.weight, model.embed.weight)


def test_the_course_strategies_run_on_the_dna_model():
    task = dna.make_promoter_task(seed=0, pool_per_class=8, val_per_class=4, test_per_class=4)
    data = dna.encode_dna_task(task)
    lm = convlm.ConvLM(convlm.ConvLMConfig(vocab_size=len(dna.dna_tokenizer()), d_model=8, n_layers=2))
    assert isinstance(make_classifier("scratch", lm, 4), convlm.ConvLMClassifier)
    partial = make_classifier("partial", lm, 4)
    assert not partial.body.embed.weight.requires_grad and partial.body.blocks[-1].conv.weight.requires_grad
    assert type(random_encoder(lm, 0)) is convlm.ConvLM
    r = run_strategy("full", lm, data, 2, 0, steps=3, grid=(1e-3,))
    assert 0 <= r["test"] <= 1


def test_short_pretraining_lowers_the_loss_and_is_reproducible():
    torch.set_num_threads(1)
    m1, h1 = pretrain_dna_lm(steps=30, n_sequences=300, seed=0, live=False, progress=False)
    m2, h2 = pretrain_dna_lm(steps=30, n_sequences=300, seed=0, live=False, progress=False)
    assert h1.loss == h2.loss
    assert np.mean(h1.loss[-5:]) < np.mean(h1.loss[:5])


def test_shipped_dna_lm_is_pinned_and_learned_the_boxes():
    path = data_dir() / f"{NAME}.safetensors"
    assert sha256_file(path) == SHIPPED_SHA256
    lm, meta = load_dna_lm()
    acc = box_accuracy(lm, *corpus_tensors(300, seed=99))
    assert acc["box"] > acc["background"] + 0.3, acc
    assert meta["box_accuracy"]["box"] > 0.8
