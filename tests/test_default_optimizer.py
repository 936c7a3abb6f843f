"""fit's default optimizer: fused AdamW (one kernel for every parameter), the same updates as AdamW."""
import torch

from ptm_lib.nets.transformer import TransformerConfig, TransformerLM
from ptm_lib.train import default_optimizer, fit


def model():
    torch.manual_seed(0)
    return TransformerLM(TransformerConfig(vocab_size=40, max_len=8, d_model=16, n_layers=2, n_heads=2))


def ids():
    return torch.randint(1, 40, (3, 8), generator=torch.Generator().manual_seed(0))


def test_the_default_optimizer_is_fused_adamw_and_matches_the_plain_one():
    a, b = model(), model()
    fused = default_optimizer(a.parameters(), lr=1e-2, weight_decay=0.1)
    plain = torch.optim.AdamW(b.parameters(), lr=1e-2, weight_decay=0.1)
    assert fused.defaults["fused"] is True and fused.defaults["weight_decay"] == 0.1
    for _ in range(3):
        for m, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            m(ids()).pow(2).mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_parameters_without_a_fused_kernel_get_the_plain_adamw(monkeypatch):
    real = torch.optim.AdamW

    def no_fused_kernel(params, fused=None, **kw):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return real(params, **kw)
    monkeypatch.setattr(torch.optim, "AdamW", no_fused_kernel)
    opt = default_optimizer(model().parameters(), lr=1e-3, weight_decay=0.1)
    assert isinstance(opt, real) and not opt.defaults.get("fused") and opt.defaults["weight_decay"] == 0.1


def test_fit_trains_with_the_default_optimizer():
    lm = model()
    x = ids()
    history = fit(lm, lambda m, b: m(b).logsumexp(-1).mean(), [x] * 4, steps=4, lr=1e-2, progress=False, live=False,
                  device="cpu")
    assert history.loss[-1] < history.loss[0]
