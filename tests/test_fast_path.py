"""A speed-up of ptm_lib that keeps the results: attention without a mask when a batch has no padding."""
import torch

from ptm_lib.nets import transformer
from ptm_lib.nets.transformer import TransformerConfig, TransformerLM


def model(**kw):
    torch.manual_seed(0)
    return TransformerLM(TransformerConfig(vocab_size=40, max_len=8, d_model=16, n_layers=2, n_heads=2, **kw)).eval()


def ids():
    return torch.randint(1, 40, (3, 8), generator=torch.Generator().manual_seed(0))


def test_a_batch_without_padding_attends_without_a_mask_and_gives_the_same_outputs(monkeypatch):
    seen, attend = [], transformer._attend

    def spy(q, k, v, key_mask, causal, dropout_p):
        seen.append(key_mask)
        return attend(q, k, v, key_mask, causal, dropout_p)
    monkeypatch.setattr(transformer, "_attend", spy)
    for causal in (False, True):
        lm, x = model(causal=causal), ids()
        full = torch.ones_like(x, dtype=torch.bool)
        with torch.no_grad():
            torch.testing.assert_close(lm(x, full), lm(x), rtol=1e-5, atol=1e-6)
    assert seen and all(m is None for m in seen)


def test_a_padded_batch_still_uses_its_mask(monkeypatch):
    x, mask = ids(), torch.ones(3, 8, dtype=torch.bool)
    mask[0, 5:] = False
    with torch.no_grad():
        unpadded = model()(x[:1, :5])[0]
    seen, attend = [], transformer._attend
    monkeypatch.setattr(transformer, "_attend", lambda q, k, v, m, c, p: seen.append(m) or attend(q, k, v, m, c, p))
    with torch.no_grad():
        out = model()(x, mask)
    assert torch.allclose(out[0, :5], unpadded, atol=1e-5)      # the padding changes nothing
    assert len(seen) == 2 and all(m is not None for m in seen)
