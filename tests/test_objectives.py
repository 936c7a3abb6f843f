import pytest
import torch

from ptm_lib.nets.transformer import EncoderDecoder, TransformerConfig, TransformerLM
from ptm_lib.text.objectives import (IGNORE_INDEX, clm_loss, denoising_loss, mask_tokens, masked_lm_loss,
                                     mlm_loss, span_corrupt)


@pytest.fixture(scope="module")
def batch(lang, tok):
    return tok.encode_batch(lang.corpus(64, seed=0), add_sep=True)


def test_mask_tokens_80_10_10(tok):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(tok.n_special, len(tok), (400, 50), generator=g)
    inp, labels = mask_tokens(ids, tok, p=0.15, generator=g)
    sel = labels != IGNORE_INDEX
    n = sel.sum().item()
    assert abs(n / ids.numel() - 0.15) < 0.01
    assert torch.equal(labels[sel], ids[sel])
    assert torch.equal(inp[~sel], ids[~sel])                     # unselected untouched
    masked = (inp[sel] == tok.mask_id).float().mean().item()
    unchanged = (inp[sel] == ids[sel]).float().mean().item()
    random_ = 1 - masked - unchanged
    assert abs(masked - 0.8) < 0.02
    assert abs(unchanged - 0.1 - 0.1 / (len(tok) - 5)) < 0.015    # kept (+ random that hit itself)
    assert abs(random_ - 0.1) < 0.015
    assert (inp[sel][inp[sel] != tok.mask_id] >= tok.n_special).all()   # random tokens are never special


def test_mask_tokens_never_masks_specials_and_is_deterministic(batch, tok):
    ids, _ = batch
    a = mask_tokens(ids, tok, p=0.5, generator=torch.Generator().manual_seed(3))
    b = mask_tokens(ids, tok, p=0.5, generator=torch.Generator().manual_seed(3))
    c = mask_tokens(ids, tok, p=0.5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    special = ids < tok.n_special
    assert (a[1][special] == IGNORE_INDEX).all()
    assert torch.equal(a[0][special], ids[special])
    full, lab = mask_tokens(ids, tok, p=1.0, generator=torch.Generator().manual_seed(0))
    assert ((lab != IGNORE_INDEX) == ~special).all()


def test_mask_tokens_bad_input(tok):
    ids = torch.randint(5, 20, (2, 5))
    with pytest.raises(ValueError, match="p must be in"):
        mask_tokens(ids, tok, p=1.5)
    with pytest.raises(ValueError, match="LongTensor"):
        mask_tokens(ids.float(), tok)
    with pytest.raises(ValueError, match="mask_id is required"):
        mask_tokens(ids, 100)                                       # int vocab needs mask_id
    with pytest.raises(ValueError, match="outside the vocabulary"):
        mask_tokens(ids + 10_000, tok)
    inp, lab = mask_tokens(ids, 30, mask_id=4, special_ids=range(5), p=1.0,
                           generator=torch.Generator().manual_seed(0))
    assert inp.shape == ids.shape and torch.equal(lab, ids)        # p = 1: every token is a target


def test_mlm_loss_only_on_masked_positions(batch, tok):
    ids, _ = batch
    inp, labels = mask_tokens(ids, tok, generator=torch.Generator().manual_seed(0))
    logits = torch.randn(*ids.shape, len(tok), generator=torch.Generator().manual_seed(1))
    base = mlm_loss(logits, labels)
    changed = logits.clone()
    changed[labels == IGNORE_INDEX] += 100 * torch.randn_like(changed[labels == IGNORE_INDEX])
    assert torch.allclose(mlm_loss(changed, labels), base)
    changed[labels != IGNORE_INDEX] += 1.0 * torch.randn_like(changed[labels != IGNORE_INDEX])
    assert not torch.allclose(mlm_loss(changed, labels), base)
    # gradient is zero at unmasked positions
    lg = logits.clone().requires_grad_(True)
    mlm_loss(lg, labels).backward()
    assert (lg.grad[labels == IGNORE_INDEX] == 0).all()
    assert mlm_loss(logits, torch.full_like(labels, IGNORE_INDEX)).item() == 0.0


def test_clm_loss_shift_and_padding():
    V = 7
    ids = torch.tensor([[2, 5, 6, 0]])
    mask = torch.tensor([[True, True, True, False]])
    logits = torch.full((1, 4, V), -20.0)
    logits[0, 0, 5] = logits[0, 1, 6] = 20.0              # position t predicts ids[t+1]
    logits[0, 2, 3] = 20.0                                 # prediction of the pad: ignored
    assert clm_loss(logits, ids, mask).item() < 1e-6
    assert clm_loss(logits, ids).item() > 1.0              # without the mask the pad target counts


def test_span_corrupt_and_denoising(batch, tok):
    ids, mask = batch
    out = span_corrupt(ids, mask, tok, p=0.3, generator=torch.Generator().manual_seed(0))
    again = span_corrupt(ids, mask, tok, p=0.3, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(out[k], again[k]) for k in out)
    assert (out["src"] == tok.mask_id).any(1).all()        # every sentence corrupted
    assert (out["src_mask"].sum(1) < mask.sum(1)).all()      # spans collapse to one [MASK]
    # target = the original words followed by [SEP]; decoder input = [CLS] + words
    words = [[t for t in row if t >= tok.n_special] for row in ids.tolist()]
    for i, w in enumerate(words):
        tgt = out["tgt_out"][i][out["tgt_out"][i] != IGNORE_INDEX].tolist()
        assert tgt == w + [tok.sep_id]
        assert out["tgt_in"][i][: len(w) + 1].tolist() == [tok.cls_id] + w
    torch.manual_seed(0)
    ed = EncoderDecoder(TransformerConfig(vocab_size=len(tok), max_len=32, d_model=32, n_heads=4))
    loss = denoising_loss(ed, out)
    assert loss.ndim == 0 and abs(loss.item() - torch.log(torch.tensor(float(len(tok)))).item()) < 1.0


def test_masked_lm_loss_equals_mlm_loss_on_full_logits(batch, tok):
    ids, mask = batch
    torch.manual_seed(0)
    lm = TransformerLM(TransformerConfig(vocab_size=len(tok), max_len=32, d_model=32, n_heads=4)).eval()
    inputs, labels = mask_tokens(ids, tok, 0.3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = mlm_loss(lm(inputs, mask), labels)          # head everywhere, loss at masked positions
        fast = masked_lm_loss(lm, inputs, labels, mask)    # head at masked positions only
    assert torch.allclose(full, fast, atol=1e-5)
    nothing = torch.full_like(labels, IGNORE_INDEX)
    empty = masked_lm_loss(lm.train(), inputs, nothing, mask)
    assert empty.item() == 0.0 and empty.requires_grad      # no NaN when nothing is masked
