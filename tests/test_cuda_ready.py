"""CUDA readiness, checked on a CPU: the training paths create their tensors on the device of their
inputs, never on a default device. Trick: inside `with torch.device("meta")`, a tensor made without
`device=` lands on the meta device, and mixing it with the CPU tensors of the batch fails (or the
result is on meta). The tests at the bottom run only on a CUDA machine (benchmarks/gpu_check.sh)."""
import contextlib

import pytest
import torch

from ptm_lib.nets.transformer import EncoderDecoder, TransformerConfig, TransformerLM
from ptm_lib.text.objectives import clm_loss, denoising_loss, mask_tokens, masked_lm_loss, mlm_loss
from ptm_lib.train import fit

V, SPECIAL = 30, range(5)


def tiny(**kw):
    torch.manual_seed(0)
    return TransformerConfig(vocab_size=V, max_len=8, d_model=16, n_layers=1, n_heads=2, **kw)


def batch():
    ids = torch.randint(5, V, (3, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[0, 5:] = False
    return ids, mask


def test_the_meta_trick_catches_a_tensor_made_without_a_device():
    ids, _ = batch()
    with torch.device("meta"), pytest.raises((RuntimeError, NotImplementedError)):
        float((ids + torch.zeros(ids.shape, dtype=torch.long)).sum())


def test_masking_and_the_losses_stay_on_the_device_of_the_input_ids():
    ids, mask = batch()
    encoder, decoder = TransformerLM(tiny()), TransformerLM(tiny(causal=True))
    with torch.device("meta"):
        inputs, labels = mask_tokens(ids, V, 0.3, mask_id=4, special_ids=SPECIAL, generator=torch.Generator())
        assert inputs.device == labels.device == ids.device
        losses = [masked_lm_loss(encoder, inputs, labels, mask), mlm_loss(encoder(inputs, mask), labels),
                  clm_loss(decoder(ids, mask), ids, mask)]
        for loss in losses:
            assert loss.device == ids.device and torch.isfinite(loss)
            loss.backward()


def test_span_corruption_and_the_encoder_decoder_stay_on_the_device_of_the_input_ids():
    from ptm_lib.text.tokenizer import WordTokenizer

    tok = WordTokenizer([f"w{i}" for i in range(V - 5)])
    ids, mask = tok.encode_batch(["w1 w2 w3 w4 w5", "w6 w7"], max_len=8)
    from ptm_lib.text.objectives import span_corrupt
    model = EncoderDecoder(TransformerConfig(vocab_size=len(tok), max_len=8, d_model=16, n_layers=1, n_heads=2))
    with torch.device("meta"):
        corrupted = span_corrupt(ids, mask, tok, 0.3, generator=torch.Generator().manual_seed(0))
        assert {t.device for t in corrupted.values()} == {ids.device}
        loss = denoising_loss(model, corrupted)
        assert loss.device == ids.device and torch.isfinite(loss)


def three_mlm_steps(device, default_device=None) -> TransformerLM:
    """A tiny TransformerLM after three masked-LM steps of `fit` on `device` (masks from a CPU generator);
    `fit` runs with `default_device` as torch's default (meta: a tensor made without device= lands there)."""
    ids, mask = batch()
    model, g = TransformerLM(tiny()), torch.Generator().manual_seed(0)

    def loss_fn(m, b):
        inputs, labels = mask_tokens(b[0], V, 0.3, mask_id=4, special_ids=SPECIAL, generator=g)
        return masked_lm_loss(m, inputs, labels, b[1])
    with torch.device(default_device) if default_device else contextlib.nullcontext():
        history = fit(model, loss_fn, [(ids, mask)] * 3, steps=3, device=device, progress=False, live=False)
    assert len(history.loss) == 3
    return model


def test_fit_trains_on_the_device_it_is_given():
    model = three_mlm_steps("cpu", default_device="meta")
    assert all(p.device.type == "cpu" for p in model.parameters())


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh)")


@cuda
def test_on_cuda_masking_with_a_cpu_generator_draws_the_same_masks():
    ids, _ = batch()
    on_cpu = mask_tokens(ids, V, 0.3, mask_id=4, special_ids=SPECIAL, generator=torch.Generator().manual_seed(1))
    on_gpu = mask_tokens(ids.cuda(), V, 0.3, mask_id=4, special_ids=SPECIAL, generator=torch.Generator().manual_seed(1))
    assert all(t.device.type == "cuda" for t in on_gpu)
    assert all(torch.equal(a, b.cpu()) for a, b in zip(on_cpu, on_gpu))


@cuda
def test_on_cuda_a_training_step_runs_on_the_gpu():
    assert all(p.device.type == "cuda" for p in three_mlm_steps("cuda").parameters())
