"""ptm_lib.trends.multimodal: captions from pixels, CLIP's loss, the towers, zero-shot and retrieval."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ptm_lib.trends import multimodal as mm
from ptm_lib.vision.digits import load_digits


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_describe_reads_ink_size_and_slant_from_pixels():
    img = torch.zeros(3, 8, 8)
    img[0, 2:6, 3] = 1.0                         # a short vertical bar
    img[1, 0:8, 3:5] = 1.0                       # a tall thick bar
    for r in range(8):                           # a diagonal whose top is to the right: leans right
        img[2, r, 7 - r] = 1.0
    att = mm.describe(img.reshape(3, 64))
    assert att["size"][0] == pytest.approx(math.sqrt(1.25))       # rows 2..5 around 3.5: variance 1.25
    assert att["size"][1] > att["size"][0] and att["ink"][1] > att["ink"][0]
    assert abs(att["slant"][0]) < 1e-6 and att["slant"][2] > 0.5


def test_captions_are_seeded_name_the_class_and_use_every_template(digits):
    X, y = digits.X_train[:300], digits.y_train[:300]
    a, b = mm.make_captions(X, y, seed=3), mm.make_captions(X, y, seed=3)
    assert a == b and a != mm.make_captions(X, y, seed=4)
    assert all(mm.WORDS[int(c)] in mm.words_of(t) for t, c in zip(a, y))
    assert not any(ch.isdigit() for t in a for ch in t)                # no numerals in any caption
    stems = {t.split("{")[0] for t in mm.CAPTION_TEMPLATES}
    assert all(any(c.startswith(s) for c in a) for s in stems)
    words = mm.attribute_words(X)
    for key, names in (("stroke", mm.STROKE), ("size", mm.SIZE), ("slant", mm.SLANT)):   # terciles: every bin is used
        counts = [sum(w[key] == n for w in words) for n in names]
        assert min(counts) >= 80, (key, counts)
    with pytest.raises(ValueError, match="labels"):
        mm.make_captions(X[:2], [3], seed=0)
    with pytest.raises(TypeError):
        mm.make_captions(torch.zeros(2, 64, dtype=torch.long), [1, 2])


def test_clip_loss_matches_the_formula_and_is_symmetric():
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    fast = mm.clip_loss(img, txt, 3.0)
    assert abs(float(fast) - float(mm.clip_loss_reference(img, txt, 3.0))) < 1e-6
    assert torch.allclose(fast, mm.clip_loss(txt, img, 3.0))
    # perfectly aligned, well-separated pairs at a high scale: the loss goes to 0
    eye = torch.eye(6)
    assert float(mm.clip_loss(eye, eye, 100.0)) < 1e-6
    # all embeddings equal: every row is uniform, loss = ln N
    assert abs(float(mm.clip_loss(torch.ones(4, 3), torch.ones(4, 3), 10.0)) - math.log(4)) < 1e-6
    with pytest.raises(ValueError, match="N >= 2"):
        mm.clip_loss(torch.ones(1, 3), torch.ones(1, 3), 1.0)


def test_bag_of_words_tower_drops_unknown_words():
    tower = mm.BagOfWordsTower(["a handwritten seven", "number two, small"], dim=4, emb_dim=3)
    assert tower.known("a picture of the number 7") == ["a", "number"]
    out = tower(["seven", "7", "Seven!"])
    assert out.shape == (3, 4)
    assert torch.allclose(out[0], out[2])                      # case and punctuation ignored
    assert torch.allclose(out[1], tower.proj(tower.bag.weight[0]))   # nothing known: the [UNK] row
    with pytest.raises(TypeError):
        tower("seven")


def test_frozen_tower_caches_and_encodes_each_string_once():
    calls = []

    def encode(texts):
        calls.append(list(texts))
        return np.stack([np.full(6, len(t), dtype=np.float32) for t in texts])

    tower = mm.FrozenTextTower(encode, in_dim=6, dim=2)
    tower(["ab", "abc", "ab"])
    tower(["abc", "abcd"])
    assert calls == [["ab", "abc"], ["abcd"]]
    assert tower.frozen(["abcd"])[0, 0] == 4 and not tower.frozen(["abcd"]).requires_grad
    assert [n for n, _ in tower.named_parameters()] == ["proj.weight", "proj.bias"]   # only the projection learns


def test_training_lowers_the_loss_and_zero_shot_beats_chance(digits):
    X, y = digits.X_train[:400], digits.y_train[:400]
    captions = mm.make_captions(X, y, seed=0)
    model = mm.CLIP(mm.BagOfWordsTower(captions, dim=16), dim=16, width=8, seed=0)
    losses = mm.train_clip(model, X, captions, steps=60, batch_size=64, seed=0)
    assert np.mean(losses[-10:]) < np.mean(losses[:5]) - 0.5
    acc = mm.zero_shot_accuracy(model, digits.X_test, digits.y_test, ["a handwritten {word}"])
    assert acc > 0.3
    assert mm.zero_shot_predict(model, digits.X_test[:5], "{word}").shape == (5,)
    with pytest.raises(ValueError, match="captions"):
        mm.train_clip(model, X, captions[:-1], steps=1)


def test_recall_at_k_and_its_chance():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.1, 0.8], [0.0, 0.5, 0.4]])
    match = torch.eye(3, dtype=torch.bool)
    assert mm.recall_at_k(sim, match, 1) == pytest.approx(1 / 3)     # only query 0 ranks its pair first
    assert mm.recall_at_k(sim, match, 2) == pytest.approx(2 / 3)
    assert mm.recall_at_k(sim, match, 3) == 1.0
    assert mm.retrieval_chance(match, 1) == pytest.approx(1 / 3)
    # chance by simulation: random scores, two right candidates out of ten, top 3
    m = torch.zeros(1, 10, dtype=torch.bool)
    m[0, :2] = True
    rng = torch.Generator().manual_seed(0)
    sims = torch.rand(20000, 10, generator=rng)
    assert mm.recall_at_k(sims, m.expand(20000, 10), 3) == pytest.approx(mm.retrieval_chance(m, 3), abs=0.01)
    assert mm.caption_match(["a", "b", "a"]).tolist() == [[True, False, True], [False, True, False], [True, False, True]]
    with pytest.raises(ValueError, match="k must"):
        mm.recall_at_k(sim, match, 4)


def test_clip_init_depends_on_its_seed_only():
    tower = mm.BagOfWordsTower(["a one"], dim=8)
    torch.manual_seed(1)
    a = mm.CLIP(tower, dim=8, width=4, seed=5)
    after = torch.rand(1)
    torch.manual_seed(2)
    b = mm.CLIP(tower, dim=8, width=4, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.image.parameters(), b.image.parameters()))
    torch.manual_seed(1)
    assert torch.equal(torch.rand(1), after)                          # the global generator was not reset
    assert a.logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-5)
